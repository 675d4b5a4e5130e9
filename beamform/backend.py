"""The only module that knows about the GPU.

Everything else asks :func:`get_xp` for the array module (NumPy or CuPy) and calls the few
backend-specific operations defined here.  CuPy is imported lazily, so ``import acam.beamform`` works on
a machine without CuPy or a GPU.
"""

from __future__ import annotations

import contextlib
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


def gpu_count() -> int:
    """CUDA devices CuPy sees (0 without CuPy or a GPU)."""
    cp = _cupy()
    return 0 if cp is None else int(cp.cuda.runtime.getDeviceCount())


def check_gpu_workers(device: str, n_local: int | None) -> None:
    """Refuse ``n_local`` local worker processes on fewer GPUs when they would beamform on the GPU:
    each process holds its own CUDA context and memory pool, and their kernels only take turns on
    the one card.  ``n_local`` None or 1 (serial, a remote cluster, one worker per GPU) passes."""
    if n_local is None or n_local <= 1 or device == "cpu":
        return
    n_gpus = gpu_count()
    if n_gpus and n_local > n_gpus:
        raise AcamError(f"workers={n_local} local processes would share {n_gpus} GPU(s) (a CUDA context and "
                        f"memory pool each, taking turns on the card): use scheduler='local-cuda' (one worker "
                        f"per GPU), at most {n_gpus} worker(s), or device='cpu'")


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
def _gpu_module(device_id: int):
    """The kernels of :mod:`acam.beamform._kernels`, compiled once per device (one module holds all)."""
    from . import _kernels

    cp = _cupy()
    with cp.cuda.Device(device_id):
        return cp.RawModule(code=_kernels.CUDA_SOURCE, options=("--std=c++14",),
                            name_expressions=list(_kernels.CUDA_NAMES))


def _gpu_kernel(name: str):
    """A kernel of the current device's module (compiled on its first use)."""
    return _gpu_module(_cupy().cuda.Device().id).get_function(name)


_TILE = 32          # power_transpose: a block covers 32 bins x 32 frames of one pixel
_MAX_GRID_YZ = 65535


def power_transpose_launch(kc: int, n_pix: int, n_frames: int) -> tuple[tuple, tuple]:
    """``(grid, block)`` of the GPU ``power_transpose`` for a chunk of ``kc`` bins (see the kernel)."""
    grid = (n_pix, -(-n_frames // _TILE), -(-kc // _TILE))
    if n_pix > 2 ** 31 - 1 or grid[1] > _MAX_GRID_YZ or grid[2] > _MAX_GRID_YZ:
        raise AcamError(f"power_transpose: {n_pix} pixels, {n_frames} frames or {kc} bins exceed the "
                        "launch grid; use smaller blocks")
    return grid, (_TILE, 8)


def _real_name(dtype, what: str) -> str:
    names = {np.dtype(np.complex64): "float", np.dtype(np.complex128): "double"}
    if np.dtype(dtype) not in names:
        raise AcamError(f"{what}: complex64 or complex128 expected, not {np.dtype(dtype).name}")
    return names[np.dtype(dtype)]


def gpu_power_transpose(z, scale, out, k0: int, n_segments: int) -> None:
    """GPU twin of ``power_transpose`` in :mod:`acam.beamform._kernels` (same arguments, CuPy arrays)."""
    kc, n_pix, n_cols = z.shape
    dtype = _real_name(z.dtype, "power_transpose: z")
    for name, a in (("z", z), ("scale", scale), ("out", out)):
        if not a.flags.c_contiguous:
            raise AcamError(f"power_transpose: {name} must be C-contiguous")
    if scale.dtype != z.real.dtype or out.dtype != z.real.dtype:
        raise AcamError(f"power_transpose: scale and out must be {z.real.dtype}")
    if n_segments < 1 or n_cols % n_segments:
        raise AcamError(f"power_transpose: {n_cols} columns are not a whole number of {n_segments}-segment frames")
    n_frames = n_cols // n_segments
    if (out.ndim != 3 or out.shape[:2] != (n_frames, n_pix) or not 0 <= k0 <= out.shape[2] - kc
            or scale.shape != (out.shape[2],)):
        raise AcamError(f"power_transpose: out {out.shape} / scale {scale.shape} do not fit bins "
                        f"{k0}..{k0 + kc - 1} of {n_frames} frames x {n_pix} pixels")
    grid, block = power_transpose_launch(kc, n_pix, n_frames)
    _gpu_kernel(f"power_transpose<{dtype}>")(
        grid, block, (z, scale, out, np.int32(kc), np.int32(n_pix), np.int32(n_frames), np.int32(n_segments),
                      np.int32(out.shape[-1]), np.int32(k0)))


def gpu_steering(gain, dtau, omega, out) -> None:
    """GPU twin of ``steering_fill`` in :mod:`acam.beamform._kernels`; ``omega`` holds every bin.

    ``gain``, ``dtau`` [shape=(n_pixels, n_mics)] and ``omega`` [shape=(n_bins,)] are float64 CuPy
    arrays (the phase is formed in double precision); ``out`` is complex64 or complex128."""
    n_bins, n_pix, n_mics = out.shape
    dtype = _real_name(out.dtype, "steering: out")
    for name, a, shape in (("gain", gain, (n_pix, n_mics)), ("dtau", dtau, (n_pix, n_mics)),
                           ("omega", omega, (n_bins,))):
        if a.dtype != np.float64 or a.shape != shape or not a.flags.c_contiguous:
            raise AcamError(f"steering: {name} must be a C-contiguous float64 array of shape {shape}")
    if not out.flags.c_contiguous:
        raise AcamError("steering: out must be C-contiguous")
    threads = 256
    blocks = max(1, min(-(-n_bins * n_pix * n_mics // threads), 2 ** 31 - 1))
    _gpu_kernel(f"steering_fill<{dtype}>")(
        (blocks,), (threads,), (gain, dtau, omega, out, np.int32(n_bins), np.int32(n_pix), np.int32(n_mics)))


GPU_CHUNK_BYTES = 512 * 2 ** 20


def gpu_chunk(n_bins: int, n_pix: int, n_cols: int, itemsize: int, budget: int = GPU_CHUNK_BYTES) -> int:
    """Bins per GEMM launch on the GPU: as many as keep the complex chunk output under ``budget``
    bytes (at least 1, at most every bin), so a block takes a few large batched products."""
    per_bin = max(1, n_pix * n_cols * itemsize)
    widest = max(1, min(n_bins, budget // per_bin))
    return -(-n_bins // -(-n_bins // widest))        # the same width for every launch


@contextlib.contextmanager
def pinned(*arrays: np.ndarray):
    """Page-lock host arrays while the block runs (``cudaHostRegister``), so device-to-host copies
    into them run at full speed and asynchronously.  The arrays keep their addresses (and so their
    page alignment for ``O_DIRECT`` writes).  Yields True when they are pinned; False without a GPU
    or when the driver refuses (copies then still work, from pageable memory)."""
    cp = _cupy()
    done = []
    try:
        if cp is not None:
            try:
                for a in arrays:
                    if a.nbytes:
                        cp.cuda.runtime.hostRegister(a.ctypes.data, a.nbytes, 0)
                        done.append(a)
            except cp.cuda.runtime.CUDARuntimeError:
                pass
        yield cp is not None and len(done) == sum(1 for a in arrays if a.nbytes)
    finally:
        for a in done:
            cp.cuda.runtime.hostUnregister(a.ctypes.data)


class Uploads:
    """Double-buffered device inputs filled on their own stream by the reading thread: block i+1's
    host-to-device copy overlaps block i's compute.  :meth:`put` (reading thread) returns the device
    frames and an event; the compute stream waits for that event, and :meth:`release` (after the
    block's compute is queued) lets the buffer be refilled two blocks later."""

    def __init__(self, shape, dtype):
        cp = _cupy()
        self.device = cp.cuda.Device().id
        self.stream = cp.cuda.Stream(non_blocking=False)
        self.buf = [cp.empty(shape, dtype) for _ in range(2)]
        self.used = [None, None]

    def put(self, i: int, frames: np.ndarray):
        cp = _cupy()
        j = i % 2
        frames = np.ascontiguousarray(frames, self.buf[j].dtype)
        with cp.cuda.Device(self.device), self.stream:
            if self.used[j] is not None:
                self.stream.wait_event(self.used[j])
            d = self.buf[j][: frames.shape[0]]
            d.set(frames, self.stream)
            return d, self.stream.record()

    def release(self, i: int, compute_stream) -> None:
        self.used[i % 2] = compute_stream.record()


class Downloads:
    """Double-buffered device outputs and a copy stream: block i's copy to the host overlaps block
    i+1's compute.

    For block ``i`` (``n`` frames): compute into :meth:`target`, then :meth:`start` converts it to
    the host buffers' type on the device (float16 cubes: half the bytes cross the bus) and queues
    its copy into ``host[i % 2]`` on the copy stream; the returned event completes when the host
    buffer holds the block.  Run the compute inside ``with downloads.compute:``.  A device buffer is
    reused two blocks later, after its copy (the compute stream waits for it); the caller must not
    reuse ``host[i % 2]`` before block i's event and the consumer of that buffer are done.
    """

    def __init__(self, host: list, compute_dtype):
        cp = _cupy()
        self.host = host
        shape, out_dtype = host[0].shape, host[0].dtype
        self.compute = cp.cuda.Stream(non_blocking=False)
        self.copy = cp.cuda.Stream(non_blocking=False)
        self.stage = [cp.empty(shape, out_dtype) for _ in host]
        self.scratch = None if np.dtype(compute_dtype) == out_dtype else cp.empty(shape, compute_dtype)
        self.copied = [None] * len(host)

    def target(self, i: int, n: int):
        """Device array to compute block ``i`` into (waits, on the compute stream, for its last copy)."""
        j = i % len(self.host)
        if self.copied[j] is not None:
            self.compute.wait_event(self.copied[j])
        return (self.stage[j] if self.scratch is None else self.scratch)[:n]

    def start(self, i: int, n: int):
        """Queue block ``i``'s conversion and copy to ``host[i % 2][:n]``; returns the copy's event."""
        cp = _cupy()
        j = i % len(self.host)
        with self.compute:
            if self.scratch is not None:
                self.stage[j][:n] = self.scratch[:n]          # float32 -> float16 on the device
            computed = self.compute.record()
        self.copy.wait_event(computed)
        src, dst = self.stage[j][:n], self.host[j][:n]
        cp.cuda.runtime.memcpyAsync(dst.ctypes.data, src.data.ptr, src.nbytes,
                                    cp.cuda.runtime.memcpyDeviceToHost, self.copy.ptr)
        self.copied[j] = self.copy.record()
        return self.copied[j]


def rfft(x, n: int, axis: int):
    """Real FFT on either backend (SciPy's multithreaded pocketfft on the CPU)."""
    if isinstance(x, np.ndarray):
        import scipy.fft

        return scipy.fft.rfft(x, n=n, axis=axis, workers=cpu_threads())
    return _cupy().fft.rfft(x, n=n, axis=axis)
