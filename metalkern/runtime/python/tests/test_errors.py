"""Bad input: a clear error naming the argument, what it got and what is
supported, raised before any kernel runs (no kernel-call log line)."""

import os

import pytest
import torch

import orchard_ops
from conftest import DEVICE, randn


def t(shape, dtype=torch.float32, device=None):
    x = torch.zeros(shape, dtype=dtype)
    return x.to(device or DEVICE)


OK = (1, 2, 8, 16)

# (id, q, k, v, kwargs, exception, substrings of the message)
CASES = [
    ("q-float64", lambda: (t(OK, torch.float64), t(OK), t(OK)), {}, TypeError,
     ["q", "torch.float64", "float32", "float16"]),
    ("v-int32", lambda: (t(OK), t(OK), t(OK, torch.int32)), {}, TypeError, ["v", "torch.int32", "float32"]),
    ("k-other-dtype", lambda: (t(OK), t(OK, torch.float16), t(OK, torch.float16)), {}, TypeError,
     ["k", "torch.float16", "torch.float32", "one dtype"]),
    ("q-3d", lambda: (t((2, 8, 16)), t(OK), t(OK)), {}, ValueError, ["q", "4-D [B, H, N, D]", "(2, 8, 16)"]),
    ("k-5d", lambda: (t(OK), t((1, 1, 2, 8, 16)), t(OK)), {}, ValueError, ["k", "4-D", "5-D"]),
    ("head-dim-257", lambda: (t((1, 1, 4, 257)), t((1, 1, 4, 257)), t((1, 1, 4, 257))), {}, ValueError,
     ["D=257", "1..256"]),
    ("k-other-B", lambda: (t(OK), t((2, 2, 8, 16)), t((2, 2, 8, 16))), {}, ValueError,
     ["k", "(2, 2, 8, 16)", "(1, 2, 8, 16)", "B, H and D must match"]),
    ("k-other-D", lambda: (t(OK), t((1, 2, 8, 32)), t((1, 2, 8, 32))), {}, ValueError,
     ["k", "(1, 2, 8, 32)", "B, H and D must match"]),
    ("v-other-N", lambda: (t(OK), t(OK), t((1, 2, 9, 16))), {}, ValueError,
     ["v", "(1, 2, 9, 16)", "k (1, 2, 8, 16)", "must be equal"]),
    ("empty-N", lambda: (t((1, 2, 0, 16)), t(OK), t(OK)), {}, ValueError, ["q", "(1, 2, 0, 16)", ">= 1"]),
    ("k-on-meta", lambda: (t(OK), t(OK, device="meta"), t(OK)), {}, ValueError,
     ["k", "meta", "q is on %s" % DEVICE, "one device"]),
    ("all-on-meta", lambda: (t(OK, device="meta"), t(OK, device="meta"), t(OK, device="meta")), {},
     ValueError, ["q is on meta", "cpu (emu) and mps (Metal)"]),
    ("q-not-a-tensor", lambda: ([[1.0]], t(OK), t(OK)), {}, TypeError, ["q", "torch.Tensor", "list"]),
    ("scale-nan", lambda: (t(OK), t(OK), t(OK)), {"scale": float("nan")}, ValueError, ["scale", "nan", "finite"]),
    ("scale-huge", lambda: (t(OK), t(OK), t(OK)), {"scale": 1e39}, ValueError, ["scale", "float32"]),
    ("scale-str", lambda: (t(OK), t(OK), t(OK)), {"scale": "0.1"}, TypeError, ["scale", "str", "float"]),
    ("causal-int", lambda: (t(OK), t(OK), t(OK)), {"causal": 1}, TypeError, ["causal", "bool", "int"]),
]


@pytest.fixture
def call_log(tmp_path, restore_settings):
    """The kernel-call log switched on into tmp_path: a bad call must leave it without lines."""
    path = tmp_path / "calls.log"
    orchard_ops.configure(debug=True, kernel_log=str(path))
    yield path
    assert not path.exists() or path.read_text() == "", "a kernel ran for bad input:\n" + path.read_text()


@pytest.mark.parametrize("fn", ["flash_attn", "flash_attn_with_lse"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_kernel(case, fn, call_log):
    _, make, kwargs, exc, words = case
    with pytest.raises(exc) as e:
        getattr(orchard_ops, fn)(*make(), **kwargs)
    msg = str(e.value)
    assert msg.startswith(fn + ": "), msg
    for w in words:
        assert w in msg, "%r not in %r" % (w, msg)


def test_the_ops_check_their_inputs_too(call_log):
    # torch.ops.orchard.* called directly (no Python checks): c10's errors
    ops = torch.ops.orchard
    with pytest.raises(TypeError, match=r"q has dtype Double: supported are float32 and float16"):
        ops.flash_attn_fwd(t(OK, torch.float64), t(OK), t(OK), False, 0.25)
    with pytest.raises(ValueError, match=r"head dim D=300 is not supported: supported D is 1\.\.256"):
        ops.flash_attn_fwd(t((1, 1, 4, 300)), t((1, 1, 4, 300)), t((1, 1, 4, 300)), False, 0.25)
    with pytest.raises(ValueError, match=r"lse has shape \[1, 2, 7\], want \[1, 2, 8\]"):
        q = t(OK)
        ops.flash_attn_bwd(q, q, q, q, t((1, 2, 7)), q, False, 0.25)
    with pytest.raises(TypeError, match=r"lse has dtype Half, want Float"):
        q = t(OK)
        ops.flash_attn_bwd(q, q, q, q, t((1, 2, 8), torch.float16), q, False, 0.25)


def test_configure_refuses_bad_knobs(restore_settings):
    with pytest.raises(TypeError, match="unknown knob 'colour'.*debug, kernel_log, mode, watchdog, workers"):
        orchard_ops.configure(colour="red")
    with pytest.raises(ValueError, match="mode='gpu': want one of fibers, threads"):
        orchard_ops.configure(mode="gpu")
    with pytest.raises(TypeError, match="workers='2': want an int"):
        orchard_ops.configure(workers="2")
    with pytest.raises(ValueError, match="workers=5000: want a whole number from 0 to 4096"):
        orchard_ops.configure(workers=5000)
    with pytest.raises(ValueError, match="watchdog=0: want a whole number from 1 to 86400"):
        orchard_ops.configure(watchdog=0)
    with pytest.raises(TypeError, match="debug=1: want True or False"):
        orchard_ops.configure(debug=1)


def test_missing_library_says_how_to_build_it(tmp_path):
    import subprocess
    import sys
    env = dict(os.environ, ORCHARD_OPS_LIBRARY=str(tmp_path / "nope.so"))
    r = subprocess.run([sys.executable, "-c", "import orchard_ops"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "ORCHARD_OPS_LIBRARY=%s is not a file" % (tmp_path / "nope.so") in r.stderr
    assert "cmake -S <runtime>/torch" in r.stderr
