"""Several Python threads at once, fork()ed children (a DataLoader worker),
and interpreter exit."""

import os
import select
import subprocess
import sys
import threading
import time
import traceback

import pytest
import torch

import orchard_ops
from conftest import DEVICE, randn

SHAPES = [(1, 2, 33, 33, 32), (2, 1, 17, 40, 64), (1, 3, 9, 9, 100)]


def work(shape, seed):
    B, H, Nq, Nk, D = shape
    q = randn((B, H, Nq, D), torch.float32, seed, True)
    k = randn((B, H, Nk, D), torch.float32, seed + 1, True)
    v = randn((B, H, Nk, D), torch.float32, seed + 2, True)
    o = orchard_ops.flash_attn(q, k, v, causal=seed % 2 == 1)
    o.backward(torch.ones_like(o))
    return [t.detach().cpu() for t in (o, q.grad, k.grad, v.grad)]


def test_two_threads_at_once_give_the_results_of_one():
    jobs = [(s, seed) for seed in range(4) for s in SHAPES]
    want = [work(s, seed) for s, seed in jobs]  # one thread: the reference (emu is deterministic)
    got = {}
    errors = []
    start = threading.Barrier(2)

    def run(part):
        try:
            start.wait()
            for i in range(part, len(jobs), 2):
                got[i] = work(*jobs[i])
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(p,)) for p in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in threads), "a thread hangs"
    assert not errors, errors
    for i in range(len(jobs)):
        for g, w in zip(got[i], want[i]):
            assert torch.equal(g, w), "job %d differs between threads and one thread" % i


def _wait(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


# Needs the op library's fork handling (attn_api.cpp's pthread_atfork: the
# child makes its own emu backend; emu-inproc's backend reset does the same
# inside emu). Without it the child waits for the parent's worker threads,
# which do not exist in it, until the watchdog: this test then FAILS.
def test_a_forked_child_calls_the_op():
    want = work(SHAPES[0], 5)  # the parent has a backend with worker threads now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(r)
            got = work(SHAPES[0], 5)
            code = 0 if all(torch.equal(g, x) for g, x in zip(got, want)) else 3
        except BaseException:  # noqa: B902 - the child reports and exits
            traceback.print_exc()
        finally:
            os.write(w, b"%d" % code)
            os._exit(code)
    os.close(w)
    status = _wait(pid, 60)
    msg = os.read(r, 16) if select.select([r], [], [], 0)[0] else b""
    os.close(r)
    assert status is not None, "the forked child hangs calling the op (killed after 60 s)"
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, \
        "the child's op failed: status %r, wrote %r (3: results differ)" % (status, msg)
    # and the parent still works
    for g, x in zip(work(SHAPES[0], 5), want):
        assert torch.equal(g, x)


def test_fork_while_another_thread_runs_the_op():
    # fork() waits for a call under way (pthread_atfork holds the op's lock), so
    # the child never inherits a held lock or a pool in the middle of a dispatch.
    want = work(SHAPES[2], 7)
    stop = threading.Event()
    calls = []

    def busy():
        while not stop.is_set():
            work(SHAPES[0], 1)
            calls.append(1)

    th = threading.Thread(target=busy)
    th.start()
    try:
        while not calls:
            time.sleep(0.01)
        statuses = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    got = work(SHAPES[2], 7)
                    code = 0 if all(torch.equal(g, x) for g, x in zip(got, want)) else 3
                except BaseException:  # noqa: B902 - the child reports and exits
                    traceback.print_exc()
                finally:
                    os._exit(code)
            statuses.append(_wait(pid, 60))
    finally:
        stop.set()
        th.join(timeout=120)
    assert all(s is not None for s in statuses), "a forked child hangs (killed after 60 s): %r" % statuses
    assert all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses), statuses


class _Data(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        q = randn((1, 2, 16, 32), torch.float32, i)
        return orchard_ops.flash_attn(q, q, q, causal=True)


@pytest.mark.skipif(DEVICE != "cpu", reason="DataLoader workers cannot use MPS tensors")
def test_dataloader_workers_call_the_op():
    orchard_ops.flash_attn(*(randn((1, 1, 4, 8), torch.float32, 0),) * 3)  # backend made before the fork
    want = [_Data()[i] for i in range(4)]
    loader = torch.utils.data.DataLoader(_Data(), batch_size=1, num_workers=2,
                                         multiprocessing_context="fork", timeout=60)
    got = [b[0] for b in loader]
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_interpreter_exit_is_prompt():
    # No worker-thread join from a static destructor: the process exits at once.
    e = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = ("import torch, orchard_ops\n"
            "q = torch.randn(1, 2, 64, 64).to(%r)\n"
            "orchard_ops.flash_attn(q, q, q)\n" % DEVICE)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert time.monotonic() - t0 < 60


def test_configure_threads_mode_gives_the_same_results(restore_settings):
    want = work(SHAPES[1], 3)
    orchard_ops.configure(mode="threads", watchdog=60)
    assert orchard_ops.settings()["mode"] == "threads"
    got = work(SHAPES[1], 3)
    orchard_ops.configure(mode="fibers", workers=1)
    one = work(SHAPES[1], 3)
    for g, o, w in zip(got, one, want):
        assert torch.allclose(g, w, rtol=0, atol=1e-6) and torch.allclose(o, w, rtol=0, atol=1e-6)
