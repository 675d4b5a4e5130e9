"""The only module that knows about the GPU.

Everything else asks :func:`get_xp` for the array module (NumPy or CuPy) and calls the few
backend-specific operations defined here.  CuPy is imported lazily, so ``import acam.beamform`` works on
a machine without CuPy or a GPU.
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.errors import AcamError
from ..core.resources import cpu_threads  # noqa: F401 - re-exported for the hot path

DEVICES = ("auto", "cpu", "cuda")


@functools.lru_cache(maxsize=1)
def _cupy():
    """Return the cupy module when it imports and sees a GPU, else None."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # ImportError, CUDARuntimeError, missing driver...
        return None


def gpu_available() -> bool:
    """True when CuPy imports and at least one CUDA device is visible."""
    return _cupy() is not None


def resolve_device(device: str) -> str:
    """Map ``auto|cpu|cuda`` to ``cpu`` or ``cuda``; ``cuda`` without a GPU is an error."""
    if device not in DEVICES:
        raise AcamError(f"device={device!r} must be one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if gpu_available() else "cpu"
    if device == "cuda" and not gpu_available():
        raise AcamError("device='cuda' was asked for but CuPy or a CUDA GPU is not available "
                        "(install the 'gpu' extra on a machine with an NVIDIA GPU)")
    return device


def xp_for(device: str):
    """The array module for a resolved device name."""
    return _cupy() if device == "cuda" else np


def get_xp(array):
    """The array module (numpy or cupy) that owns ``array``."""
    cp = _cupy()
    if cp is not None and isinstance(array, cp.ndarray):
        return cp
    return np


def to_host(array) -> np.ndarray:
    """A NumPy copy (or the array itself) of a NumPy or CuPy array."""
    if isinstance(array, np.ndarray):
        return array
    return array.get()


def synchronize(xp) -> None:
    """Wait for queued GPU work; a no-op on the CPU.  Call before reading a clock."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


# --------------------------------------------------------------------------------------------- GPU
@functools.lru_cache(maxsize=None)
def _gpu_kernel(name: str, device_id: int):
    """Compile (once per device) and return a kernel from :mod:`acam.beamform._kernels`."""
    from . import _kernels

    cp = _cupy()
    module = cp.RawModule(code=_kernels.CUDA_SOURCE, options=("--std=c++14",),
                          name_expressions=list(_kernels.CUDA_NAMES))
    return module.get_function(name)


def gpu_power_transpose(z, scale, out, k0: int, nsub: int) -> None:
    """GPU twin of ``power_transpose`` in :mod:`acam.beamform._kernels` (same arguments, CuPy arrays)."""
    cp = _cupy()
    kc, n_pix, n_cols = z.shape
    n_frames = n_cols // nsub
    dtype = "float" if z.dtype == cp.complex64 else "double"
    kernel = _gpu_kernel(f"power_transpose<{dtype}>", cp.cuda.Device().id)
    for name, a in (("z", z), ("scale", scale), ("out", out)):
        if not a.flags.c_contiguous:
            raise AcamError(f"power_transpose: {name} must be C-contiguous")
    if scale.dtype != z.real.dtype or out.dtype != z.real.dtype:
        raise AcamError(f"power_transpose: scale and out must be {z.real.dtype}")
    grid = (n_pix, (n_frames + 31) // 32, (kc + 31) // 32)
    kernel(grid, (32, 8), (z, scale, out, np.int32(kc), np.int32(n_pix), np.int32(n_frames),
                           np.int32(nsub), np.int32(out.shape[-1]), np.int32(k0)))


def gpu_steering(gain, dtau, omega, out) -> None:
    """GPU twin of ``steering_fill`` in :mod:`acam.beamform._kernels`; ``omega`` holds every bin."""
    cp = _cupy()
    n_bins, n_pix, n_mics = out.shape
    dtype = "float" if out.dtype == cp.complex64 else "double"
    kernel = _gpu_kernel(f"steering_fill<{dtype}>", cp.cuda.Device().id)
    total = n_bins * n_pix * n_mics
    threads = 256
    blocks = (total + threads - 1) // threads
    kernel((blocks,), (threads,), (gain, dtau, omega, out, np.int32(n_bins), np.int32(n_pix),
                                   np.int32(n_mics)))


def rfft(x, n: int, axis: int):
    """Real FFT on either backend (SciPy's multithreaded pocketfft on the CPU)."""
    if isinstance(x, np.ndarray):
        import scipy.fft

        return scipy.fft.rfft(x, n=n, axis=axis, workers=cpu_threads())
    return _cupy().fft.rfft(x, n=n, axis=axis)
