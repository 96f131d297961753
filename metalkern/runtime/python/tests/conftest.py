"""Shared helpers of orchard_ops's pytest suite.

Run (the op library built by torch/CMakeLists.txt):
    ORCHARD_OPS_LIBRARY=<build>/liborchard_ops.so PYTHONPATH=<runtime>/python \
    PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -p no:cacheprovider -q <runtime>/python/tests
ORCHARD_TEST_DEVICE=cpu (default: the emu backend in-process) or mps (a Mac).
"""

import math
import os

import pytest
import torch

import orchard_ops

DEVICE = os.environ.get("ORCHARD_TEST_DEVICE", "cpu")
if DEVICE not in ("cpu", "mps"):
    raise pytest.UsageError("ORCHARD_TEST_DEVICE=%r: want cpu or mps" % DEVICE)

# Absolute tolerances against float64 math attention (the goals).
TOL = {torch.float32: 1e-5, torch.float16: 5e-3}


def math_attention(q, k, v, causal=False, scale=None):
    """softmax(q k^T * scale, top-left causal mask) v in float64, on the CPU: (o, lse, inputs).

    float64 CPU inputs are used as they are (their graph kept); others are
    copied to float64 leaves (requiring grad when the input does), returned
    as inputs so that a test can read their .grad.
    """
    if not all(t.dtype == torch.float64 and t.device.type == "cpu" for t in (q, k, v)):
        q, k, v = (t.detach().to("cpu", torch.float64).requires_grad_(t.requires_grad) for t in (q, k, v))
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if causal:
        nq, nk = q.shape[-2], k.shape[-2]
        keep = torch.ones(nq, nk, dtype=torch.bool).tril()
        s = s.masked_fill(~keep, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    return torch.matmul(torch.softmax(s, dim=-1), v), lse, (q, k, v)


def randn(shape, dtype, seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g, dtype=torch.float32).to(dtype).to(DEVICE)
    return t.requires_grad_(requires_grad)


def max_err(got, want):
    return (got.detach().to("cpu", torch.float64) - want.detach().to(torch.float64)).abs().max().item()


@pytest.fixture
def device():
    return DEVICE


@pytest.fixture
def restore_settings():
    """Puts back the settings a test changes with orchard_ops.configure()."""
    before = orchard_ops.settings()
    yield
    orchard_ops.configure(mode=before["mode"], workers=int(before["workers"]),
                          watchdog=int(before["watchdog"]), kernel_log=before["kernel_log"],
                          debug=before["debug"] == "1")
