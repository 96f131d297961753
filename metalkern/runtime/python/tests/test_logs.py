"""The kernel-call log: the same FWD/BWD lines as the runner (docs/logs.md),
with storage=, switched on by ORCHARD_DEBUG_FLASH_ATN=1 or configure(debug=True).

ORCHARD_TEST_KERNEL_LOG_OUT=PATH: test_lines_name_every_dispatch copies the
log it wrote there (orchard's Go test parses it with logs.Parse)."""

import os
import re
import shutil
import subprocess
import sys

import torch

import orchard_ops
from conftest import DEVICE, randn

BACKEND = "emu" if DEVICE == "cpu" else "metal"
TAG = "flashattn.emu" if DEVICE == "cpu" else "flashattn.mm"
LINE = re.compile(
    r"^\[(?P<tag>[a-z.]+)\] (?P<word>FWD|BWD) call=(?P<call>\d+) time=\S+Z pid=(?P<pid>\d+) run=(?P<run>\S+) "
    r"backend=(?P<backend>\w+) kernel=(?P<kernel>\w+) shape=(?P<shape>[\dx]+) dtype=(?P<dtype>f16|f32) "
    r"causal=(?P<causal>[01]) storage=(?P<storage>shared|private) dur_us=\d+ gpu_us=\d+ "
    r"time_source=(?:emu|gpu) part=(?P<part>\d+/\d+)$")


def run_fwd_bwd(dtype=torch.float32, causal=True):
    q = randn((1, 2, 8, 16), dtype, 1, True)
    k = randn((1, 2, 5, 16), dtype, 2, True)
    v = randn((1, 2, 5, 16), dtype, 3, True)
    orchard_ops.flash_attn(q, k, v, causal=causal).sum().backward()


def parse(path):
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        m = LINE.match(line)
        assert m, "not a kernel-call line: %r" % line
        out.append(m.groupdict())
    return out


def test_lines_name_every_dispatch(tmp_path, restore_settings):
    path = tmp_path / "logs" / "calls.log"  # the parent is made
    orchard_ops.configure(debug=True, kernel_log=str(path))
    run_fwd_bwd(torch.float32, True)
    run_fwd_bwd(torch.float16, False)
    got = parse(path)
    words = [g["word"] for g in got]
    assert words == ["FWD", "BWD", "BWD"] * 2, words
    kernels = [g["kernel"] for g in got]
    assert kernels[:3] == ["attn_fwd_f32_bq64_bk32_bd32_qtg", "attn_bwd_dq_f32_bq32_bk32_bd32",
                           "attn_bwd_dkv_f32_bq32_bk32_bd32"], kernels
    assert kernels[3].startswith("attn_fwd_f16_")
    for g in got:
        assert g["tag"] == TAG and g["backend"] == BACKEND
        assert g["pid"] == str(os.getpid())
        assert g["shape"] == "1x2x8x5x16"
        assert g["part"] == "1/1"
        assert g["storage"] in ("shared", "private")
        if DEVICE == "cpu":
            assert g["storage"] == "shared"
    assert [g["causal"] for g in got] == ["1"] * 3 + ["0"] * 3
    assert [g["dtype"] for g in got] == ["f32"] * 3 + ["f16"] * 3
    # call= counts this process's lines of each word from 1 (the log was made anew)
    assert [g["call"] for g in got if g["word"] == "FWD"] == ["1", "2"]
    assert [g["call"] for g in got if g["word"] == "BWD"] == [str(i) for i in range(1, 5)]
    out = os.environ.get("ORCHARD_TEST_KERNEL_LOG_OUT")
    if out:
        shutil.copyfile(path, out)


def test_debug_off_writes_nothing(tmp_path, restore_settings):
    path = tmp_path / "calls.log"
    orchard_ops.configure(debug=False, kernel_log=str(path))
    run_fwd_bwd()
    assert not path.exists()


def _child(code, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_") or k == "ORCHARD_OPS_LIBRARY"}
    e.update(env)
    e["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    prelude = ("import torch, orchard_ops\n"
               "q = torch.randn(1, 1, 4, 8).to(%r).requires_grad_()\n" % DEVICE)
    return subprocess.run([sys.executable, "-c", prelude + code], env=e, capture_output=True, text=True,
                          timeout=120)


def test_environment_switches_and_run_id(tmp_path):
    path = tmp_path / "env.log"
    r = _child("orchard_ops.flash_attn(q, q, q).sum().backward()\n",
               ORCHARD_DEBUG_FLASH_ATN="1", ORCHARD_KERNEL_LOG=str(path), ORCHARD_RUN_ID="train-42")
    assert r.returncode == 0, r.stderr
    got = parse(path)
    assert [g["word"] for g in got] == ["FWD", "BWD", "BWD"]
    assert {g["run"] for g in got} == {"train-42"}


def test_default_path_is_under_the_cache_dir(tmp_path):
    r = _child("orchard_ops.flash_attn(q, q, q)\nprint(orchard_ops.kernel_log_path(%r))\n" % BACKEND,
               ORCHARD_DEBUG_FLASH_ATN="1", XDG_CACHE_HOME=str(tmp_path))
    assert r.returncode == 0, r.stderr
    want = tmp_path / "orchard" / BACKEND / "logs" / "flashattn_kernel_calls.log"
    assert r.stdout.strip() == str(want)
    got = parse(want)
    assert [g["word"] for g in got] == ["FWD"]
    assert got[0]["run"].startswith("pid")


def test_bad_run_id_is_an_error(tmp_path):
    r = _child("orchard_ops.flash_attn(q, q, q)\n", ORCHARD_DEBUG_FLASH_ATN="1",
               ORCHARD_KERNEL_LOG=str(tmp_path / "x.log"), ORCHARD_RUN_ID="has space")
    assert r.returncode != 0
    assert 'ORCHARD_RUN_ID="has space" must be 1 to 128 of [A-Za-z0-9._-]' in r.stderr


def test_a_log_that_cannot_be_opened_is_an_error(tmp_path):
    target = tmp_path / "real.log"
    target.write_text("")
    link = tmp_path / "link.log"
    link.symlink_to(target)
    r = _child("orchard_ops.flash_attn(q, q, q)\n", ORCHARD_DEBUG_FLASH_ATN="1", ORCHARD_KERNEL_LOG=str(link))
    assert r.returncode != 0
    assert "cannot open the kernel-call log %s (ORCHARD_KERNEL_LOG): it is a symbolic link" % link in r.stderr


def test_split_dispatches_are_correct_and_logged(tmp_path):
    # ORCHARD_DISPATCH_GROUPS=1: every threadgroup its own dispatch, as the runner does
    path = tmp_path / "split.log"
    code = ("from conftest import math_attention, max_err\n"
            "q = torch.randn(1, 2, 72, 16).to(%r).requires_grad_()\n"
            "k = torch.randn(1, 2, 33, 16).to(%r).requires_grad_()\n"
            "o = orchard_ops.flash_attn(q, k, k, causal=True)\n"
            "o.backward(torch.ones_like(o))\n"
            "ro, _, (rq, rk, _) = math_attention(q, k, k, True)\n"
            "ro.backward(torch.ones_like(ro))\n"
            "assert max_err(o, ro) <= 1e-5 and max_err(q.grad, rq.grad) <= 1e-5, 'split results differ'\n"
            % (DEVICE, DEVICE))
    r = _child(code, ORCHARD_DEBUG_FLASH_ATN="1", ORCHARD_KERNEL_LOG=str(path), ORCHARD_DISPATCH_GROUPS="1")
    assert r.returncode == 0, r.stderr
    got = parse(path)
    fwd = [g["part"] for g in got if g["word"] == "FWD"]
    assert fwd == ["%d/4" % i for i in range(1, 5)], fwd  # ceil(72/64) x 2 heads (f32 bd32: 64-row Q blocks)
    assert len(got) > 8
