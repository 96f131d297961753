"""Non-contiguous inputs and views with a storage offset give correct results."""

import pytest
import torch

import orchard_ops
from conftest import TOL, math_attention, max_err, randn

DTYPES = [torch.float32, torch.float16]
IDS = {torch.float32: "f32", torch.float16: "f16"}


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
def test_transposed_bnhd_inputs(dtype):
    # [B, N, H, D] tensors transposed to [B, H, N, D]: strided, not contiguous
    B, N, H, D = 2, 19, 3, 24
    base = [randn((B, N, H, D), dtype, s).requires_grad_() for s in (1, 2, 3)]
    q, k, v = (t.transpose(1, 2) for t in base)
    assert not q.is_contiguous()
    o = orchard_ops.flash_attn(q, k, v, causal=True)
    do = randn((B, H, N, D), dtype, 4)
    o.backward(do)
    ro, _, refs = math_attention(*(t.detach().requires_grad_() for t in (q, k, v)), causal=True)
    ro.backward(do.to("cpu", torch.float64))
    tol = TOL[dtype]
    assert max_err(o, ro) <= tol
    for t, r in zip(base, refs):
        assert t.grad.shape == (B, N, H, D)
        assert max_err(t.grad.transpose(1, 2), r.grad) <= tol


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
@pytest.mark.parametrize("skip", [1, 3, 40], ids=lambda n: "offset%d" % n)
def test_views_with_storage_offset(dtype, skip):
    # contiguous views into the middle of a larger tensor (storage_offset > 0,
    # odd element offsets included)
    B, H, N, D = 1, 2, 13, 20
    n = B * H * N * D
    flat = randn((skip + 3 * n,), dtype, 5, True)
    q = flat[skip:skip + n].view(B, H, N, D)
    k = flat[skip + n:skip + 2 * n].view(B, H, N, D)
    v = flat[skip + 2 * n:skip + 3 * n].view(B, H, N, D)
    assert q.storage_offset() == skip and q.is_contiguous()
    o, lse = orchard_ops.flash_attn_with_lse(q, k, v, causal=True)
    do = randn((B, H, N, D), dtype, 6)
    o.backward(do)
    ro, rlse, refs = math_attention(q, k, v, causal=True)
    ro.backward(do.to("cpu", torch.float64))
    tol = TOL[dtype]
    assert max_err(o, ro) <= tol and max_err(lse, rlse) <= tol
    assert flat.grad[:skip].abs().max().item() == 0
    for i, r in enumerate(refs):
        assert max_err(flat.grad[skip + i * n:skip + (i + 1) * n].view(B, H, N, D), r.grad) <= tol


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
def test_slices_of_a_fused_qkv_tensor(dtype):
    # q, k, v sliced out of one [B, H, N, 3D] tensor: strided along D, with offsets
    B, H, N, D = 2, 2, 17, 16
    qkv = randn((B, H, N, 3 * D), dtype, 6).requires_grad_()
    q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
    o = orchard_ops.flash_attn(q, k, v)
    do = randn((B, H, N, D), dtype, 7)
    o.backward(do)
    ref = qkv.detach().to("cpu", torch.float64).requires_grad_()
    ro = math_attention(ref[..., :D], ref[..., D:2 * D], ref[..., 2 * D:])[0]
    ro.backward(do.to("cpu", torch.float64))
    assert max_err(o, ro) <= TOL[dtype]
    assert max_err(qkv.grad, ref.grad) <= TOL[dtype]


def test_inputs_are_not_modified():
    q, k, v = (randn((1, 2, 9, 8), torch.float32, s) for s in (1, 2, 3))
    before = [t.clone() for t in (q, k, v)]
    orchard_ops.flash_attn(q, k, v, causal=True)
    for t, b in zip((q, k, v), before):
        assert torch.equal(t, b)
