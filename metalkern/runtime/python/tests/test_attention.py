"""Forward and backward through autograd against float64 math attention."""

import pytest
import torch

import orchard_ops
from conftest import DEVICE, TOL, math_attention, max_err, randn

DTYPES = [torch.float32, torch.float16]
IDS = {torch.float32: "f32", torch.float16: "f16"}

# (B, H, Nq, Nk, D): every head-dim bucket and its edges, N=1, Nq != Nk both
# ways, D not a multiple of 8, D=256, tails of every block size.
SHAPES = [
    (1, 1, 1, 1, 1),
    (2, 3, 17, 17, 32),
    (1, 2, 1, 33, 64),
    (1, 2, 40, 7, 33),
    (2, 1, 65, 31, 13),
    (1, 1, 33, 70, 100),
    (1, 1, 20, 20, 128),
    (1, 1, 9, 40, 129),
    (1, 1, 18, 18, 256),
]


def shape_id(s):
    return "b%dh%d-%dx%d-d%d" % s


def check_case(shape, dtype, causal, scale=None, seed=0):
    B, H, Nq, Nk, D = shape
    q = randn((B, H, Nq, D), dtype, seed, True)
    k = randn((B, H, Nk, D), dtype, seed + 1, True)
    v = randn((B, H, Nk, D), dtype, seed + 2, True)
    do = randn((B, H, Nq, D), dtype, seed + 3)
    o, lse = orchard_ops.flash_attn_with_lse(q, k, v, causal=causal, scale=scale)
    assert o.shape == (B, H, Nq, D) and o.dtype == dtype and o.device.type == DEVICE
    assert lse.shape == (B, H, Nq) and lse.dtype == torch.float32
    o.backward(do)
    ro, rlse, (rq, rk, rv) = math_attention(q, k, v, causal, scale)
    ro.backward(do.to("cpu", torch.float64))
    tol = TOL[dtype]
    errs = {
        "o": max_err(o, ro), "lse": max_err(lse, rlse),
        "dq": max_err(q.grad, rq.grad), "dk": max_err(k.grad, rk.grad), "dv": max_err(v.grad, rv.grad),
    }
    bad = {n: e for n, e in errs.items() if not e <= tol}
    assert not bad, "errors above %g: %s" % (tol, bad)
    return errs


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward_match_math_attention(shape, dtype, causal):
    check_case(shape, dtype, causal)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
def test_explicit_scale(dtype):
    check_case((1, 2, 19, 23, 40), dtype, True, scale=0.3)


def test_flash_attn_returns_o_of_flash_attn_with_lse():
    q, k, v = (randn((1, 2, 9, 16), torch.float32, s) for s in (1, 2, 3))
    o = orchard_ops.flash_attn(q, k, v, causal=True)
    o2, _ = orchard_ops.flash_attn_with_lse(q, k, v, causal=True)
    assert torch.equal(o, o2)


def test_causal_is_top_left_like_is_causal():
    # Nq < Nk: query i sees keys 0..i (top-left), not the last Nq keys.
    q = randn((1, 1, 3, 8), torch.float32, 4)
    k = randn((1, 1, 6, 8), torch.float32, 5)
    v = randn((1, 1, 6, 8), torch.float32, 6)
    o = orchard_ops.flash_attn(q, k, v, causal=True)
    first = math_attention(q[:, :, :1], k[:, :, :1], v[:, :, :1])[0]  # row 0 sees key 0 only
    assert max_err(o[:, :, :1], first) <= 1e-6
    assert max_err(o[:, :, 0, :], v[:, :, 0, :].double()) <= 1e-6


@pytest.mark.parametrize("need", ["q", "k", "v", "kv"])
def test_backward_only_for_inputs_that_need_grad(need):
    q = randn((1, 2, 11, 24), torch.float32, 7, "q" in need)
    k = randn((1, 2, 13, 24), torch.float32, 8, "k" in need)
    v = randn((1, 2, 13, 24), torch.float32, 9, "v" in need)
    o = orchard_ops.flash_attn(q, k, v)
    o.sum().backward()  # an expanded (stride 0) gradient: made contiguous
    ro, _, (rq, rk, rv) = math_attention(q, k, v)
    ro.sum().backward()
    for name, t, r in (("q", q, rq), ("k", k, rk), ("v", v, rv)):
        if name in need:
            assert max_err(t.grad, r.grad) <= 1e-5, name
        else:
            assert t.grad is None, name


def test_no_grad_needs_no_backward():
    q, k, v = (randn((1, 1, 5, 8), torch.float32, s) for s in (1, 2, 3))
    with torch.no_grad():
        o = orchard_ops.flash_attn(q, k, v)
    assert not o.requires_grad


def _mha(x, w, attn, dtype):
    """A causal self-attention layer: x [B, N, 32] @ w [32, 96] -> q, k, v [B, 2, N, 16] in dtype
    (the projection in float32: torch 1.13 has no float16 matmul on the CPU)."""
    qkv = (x @ w).to(dtype).view(x.shape[0], x.shape[1], 3, 2, 16).permute(2, 0, 3, 1, 4)  # not contiguous
    return attn(qkv[0], qkv[1], qkv[2])


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
def test_training_step_gradients(dtype):
    # forward, loss, backward: the weight's gradient against float64 math attention
    x = randn((2, 12, 32), torch.float32, 10)
    w = (randn((32, 96), torch.float32, 11) * 0.2).detach().requires_grad_()
    o = _mha(x, w, lambda q, k, v: orchard_ops.flash_attn(q, k, v, causal=True), dtype)
    (o.float() ** 2).mean().backward()
    w64 = w.detach().to("cpu", torch.float64).requires_grad_()
    o64 = _mha(x.to("cpu", torch.float64), w64, _math64, torch.float64)
    (o64 ** 2).mean().backward()
    assert max_err(w.grad, w64.grad) <= TOL[dtype]


def _math64(q, k, v):
    s = torch.matmul(q, k.transpose(-1, -2)) / 4.0  # 1/sqrt(16)
    keep = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).tril()
    return torch.softmax(s.masked_fill(~keep, float("-inf")), -1) @ v


def test_double_backward_is_refused_clearly():
    q = randn((1, 1, 4, 8), torch.float32, 1, True)
    o = orchard_ops.flash_attn(q, q, q)
    (g,) = torch.autograd.grad(o.sum(), q, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        g.sum().backward()
