"""orchard_ops: orchard's flash-attention kernels as PyTorch ops, with autograd.

    import orchard_ops
    o = orchard_ops.flash_attn(q, k, v, causal=True)       # q: [B, H, Nq, D], k, v: [B, H, Nk, D]
    o, lse = orchard_ops.flash_attn_with_lse(q, k, v)      # lse: [B, H, Nq] float32, natural log

Layout [B, H, N, D] as F.scaled_dot_product_attention; float32 or float16;
1 <= D <= 256; Nq != Nk allowed; causal is top-left aligned (query i sees
keys j <= i), as PyTorch's is_causal; scale defaults to 1/sqrt(D).
Autograd: backward computes dQ, dK, dV (only those whose input needs grad
are returned) from the saved O and LSE.

Devices: CPU tensors run the kernels on orchard's emu backend in this
process (the Metal kernels compiled as C++); MPS tensors (macOS) run them
on the GPU, encoded on torch's MPS stream. Inputs that are not contiguous
(e.g. a [B, N, H, D] tensor transposed to [B, H, N, D]) are copied to a
contiguous tensor first; contiguous views with a storage offset are used
in place (an MPS view whose byte offset is not a multiple of 4 is copied).
Outputs are new contiguous tensors.

The library: $ORCHARD_OPS_LIBRARY when set, else liborchard_ops.so next to
this file (the package the op library's CMake build writes to
<build>/python/orchard_ops/). Settings: configure(); logs:
ORCHARD_DEBUG_FLASH_ATN=1 writes one line per kernel dispatch to
$ORCHARD_KERNEL_LOG (default: kernel_log_path()).
"""

import math
import os

import torch
from torch.autograd.function import once_differentiable

__all__ = ["flash_attn", "flash_attn_with_lse", "configure", "settings", "kernel_log_path", "library_path"]

_LIB_NAME = "liborchard_ops.so"


def _find_library():
    env = os.environ.get("ORCHARD_OPS_LIBRARY", "")
    if env:
        if not os.path.isfile(env):
            raise ImportError(
                "orchard_ops: ORCHARD_OPS_LIBRARY=%s is not a file: build the op library "
                "(cmake -S <runtime>/torch -B <dir>; cmake --build <dir>) and point it at "
                "<dir>/%s, or unset it" % (env, _LIB_NAME))
        return os.path.abspath(env)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), _LIB_NAME)
    if not os.path.isfile(here):
        raise ImportError(
            "orchard_ops: no op library: %s does not exist and ORCHARD_OPS_LIBRARY is not set; "
            "build it with `orchard rebuild` or cmake -S <runtime>/torch -B <dir> && cmake --build <dir>, "
            "then put <dir>/python on PYTHONPATH (or set ORCHARD_OPS_LIBRARY=<dir>/%s)" % (here, _LIB_NAME))
    return here


library_path = _find_library()
torch.ops.load_library(library_path)
_ops = torch.ops.orchard

_DTYPES = (torch.float32, torch.float16)
_MAX_HEAD_DIM = 256
_INT32_MAX = 2**31 - 1


def _check(q, k, v, causal, scale, fn):
    """Checks every argument before any kernel runs; returns the scale."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError("%s: %s must be a torch.Tensor, got %s" % (fn, name, type(t).__name__))
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError("%s: %s must be 4-D [B, H, N, D], got %d-D shape %s"
                             % (fn, name, t.dim(), tuple(t.shape)))
        if t.dtype not in _DTYPES:
            raise TypeError("%s: %s has dtype %s: supported are torch.float32 and torch.float16"
                            % (fn, name, t.dtype))
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError("%s: %s has dtype %s but q has %s: q, k and v must share one dtype"
                            % (fn, name, t.dtype, q.dtype))
        if t.device != q.device:
            raise ValueError("%s: %s is on %s but q is on %s: q, k and v must be on one device"
                             % (fn, name, t.device, q.device))
    if q.device.type not in ("cpu", "mps"):
        raise ValueError("%s: q is on %s: supported devices are cpu (emu) and mps (Metal)" % (fn, q.device))
    for name, t in (("q", q), ("k", k), ("v", v)):
        if min(t.shape) < 1:
            raise ValueError("%s: %s has shape %s: every dimension must be >= 1" % (fn, name, tuple(t.shape)))
        if t.numel() > _INT32_MAX:
            raise ValueError("%s: %s has %d elements: the kernels index with 32 bits (at most %d)"
                             % (fn, name, t.numel(), _INT32_MAX))
    D = q.shape[3]
    if D > _MAX_HEAD_DIM:
        raise ValueError("%s: q has head dim D=%d (shape %s): supported head dims are 1..%d"
                         % (fn, D, tuple(q.shape), _MAX_HEAD_DIM))
    if k.shape[0] != q.shape[0] or k.shape[1] != q.shape[1] or k.shape[3] != D:
        raise ValueError("%s: k has shape %s and q %s: B, H and D must match (k and v may have another N)"
                         % (fn, tuple(k.shape), tuple(q.shape)))
    if v.shape != k.shape:
        raise ValueError("%s: v has shape %s and k %s: they must be equal" % (fn, tuple(v.shape), tuple(k.shape)))
    if not isinstance(causal, bool):
        raise TypeError("%s: causal must be a bool, got %s" % (fn, type(causal).__name__))
    if scale is None:
        return 1.0 / math.sqrt(D)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError("%s: scale must be a float or None, got %s" % (fn, type(scale).__name__))
    scale = float(scale)
    if not math.isfinite(scale) or abs(scale) > 3.4028234663852886e38:
        raise ValueError("%s: scale=%r must be a finite float32 number" % (fn, scale))
    return scale


def _kernel_ready(t):
    """t as the kernels read it: contiguous, and on MPS at a 4-byte offset."""
    if not t.is_contiguous():
        t = t.contiguous()
    if t.device.type == "mps" and (t.storage_offset() * t.element_size()) % 4 != 0:
        t = t.clone()
    return t


class _FlashAttn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale):
        q, k, v = _kernel_ready(q), _kernel_ready(k), _kernel_ready(v)
        o, lse = _ops.flash_attn_fwd(q, k, v, causal, scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale = causal, scale
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    @once_differentiable
    def backward(ctx, do, _dlse):
        q, k, v, o, lse = ctx.saved_tensors
        need = ctx.needs_input_grad
        if not (need[0] or need[1] or need[2]):
            return None, None, None, None, None
        if do is None:
            do = torch.zeros_like(o)
        dq, dk, dv = _ops.flash_attn_bwd(q, k, v, o, lse, _kernel_ready(do), ctx.causal, ctx.scale)
        return (dq if need[0] else None, dk if need[1] else None, dv if need[2] else None, None, None)


def flash_attn_with_lse(q, k, v, *, causal=False, scale=None):
    """Attention and its row log-sum-exp: (o [B, H, Nq, D], lse [B, H, Nq] float32, natural log).

    lse is not differentiable (gradients flow through o only).
    """
    scale = _check(q, k, v, causal, scale, "flash_attn_with_lse")
    return _FlashAttn.apply(q, k, v, causal, scale)


def flash_attn(q, k, v, *, causal=False, scale=None):
    """softmax(q k^T * scale [+ causal mask]) v for q [B, H, Nq, D], k and v [B, H, Nk, D]."""
    scale = _check(q, k, v, causal, scale, "flash_attn")
    o, _ = _FlashAttn.apply(q, k, v, causal, scale)
    return o


_KNOBS = {
    "mode": ("fibers", "threads"),
    "workers": int,
    "watchdog": int,
    "kernel_log": str,
    "debug": bool,
}


def configure(**knobs):
    """Sets the op library's knobs; each takes effect at the next call.

    mode="fibers"|"threads" (emu scheduling; $ORCHARD_EMU_MODE), workers=N (emu
    worker threads, 0 = every core; $ORCHARD_EMU_WORKERS), watchdog=SECONDS (an
    emu dispatch without progress that long fails; $ORCHARD_EMU_WATCHDOG_SECONDS),
    kernel_log=PATH ("" = the default; $ORCHARD_KERNEL_LOG), debug=True|False (the
    kernel-call log; $ORCHARD_DEBUG_FLASH_ATN=1). The variables are read at the
    first call; configure() overrides them.
    """
    for key, value in knobs.items():
        want = _KNOBS.get(key)
        if want is None:
            raise TypeError("configure: unknown knob %r: the knobs are %s" % (key, ", ".join(sorted(_KNOBS))))
        if isinstance(want, tuple):
            if value not in want:
                raise ValueError("configure: %s=%r: want one of %s" % (key, value, ", ".join(want)))
            text = value
        elif want is bool:
            if not isinstance(value, bool):
                raise TypeError("configure: %s=%r: want True or False" % (key, value))
            text = "1" if value else "0"
        elif want is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError("configure: %s=%r: want an int" % (key, value))
            text = str(value)
        else:
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError("configure: %s=%r: want a path" % (key, value))
            text = os.fspath(value)
        _ops.configure(key, text)


def settings():
    """The settings in effect, as a dict of strings."""
    return dict(kv.split("=", 1) for kv in _ops.settings().split("\n"))


def kernel_log_path(backend="emu"):
    """Where the kernel-call log of backend "emu" (CPU) or "metal" (MPS) goes."""
    return _ops.kernel_log_path(backend)
