"""Steering: the focused (near-field) filter-and-sum weights of every look point and bin.

Convention (written once, kept everywhere).  A point source at look point ``p`` whose spectrum at
the array centre is ``S(f)`` reaches microphone ``m`` as

    X_m(f) = S(f) * (r_p0 / r_pm) * exp(-2j pi f (r_pm - r_p0) / c)

(spherical spreading, NumPy's FFT sign), with ``r_pm = |p - x_m|`` and ``r_p0 = |p|``.  The
filter-and-sum output for look point ``p`` is ``Y_p(f) = sum_m A[f, p, m] X_m(f)`` with

    A[f, p, m] = (w_m / sum_n w_n) * (r_pm / r_p0) * exp(+2j pi f (r_pm - r_p0) / c)

so a source exactly at a look point gives ``Y_p = S``: the map reads the power the source produces
at the array centre ("true level" steering).  Weights ``w_m`` are 1 by default and 0 for bad
microphones, which are dropped from the sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import backend
from ..core.digest import digest
from ..core.errors import AcamError
from .geometry import ArrayGeometry
from .grid import CameraGrid

SPEED_OF_SOUND = 343.0


@dataclass(frozen=True, eq=False)
class SteeringSpec:
    """Everything the steering matrix depends on.

    Parameters
    ----------
    geometry : ArrayGeometry
    grid : CameraGrid
    sample_freq : float
        Hz.
    n_bins : int
        Bins from 0 Hz up to (not including) Nyquist; the FFT has ``2 * n_bins`` points.
    speed_of_sound : float
        m/s.
    weights : np.ndarray [shape=(n_mics,)] or None
        Per-microphone weights (>= 0); 0 drops a microphone.  None means all ones.
    """

    geometry: ArrayGeometry
    grid: CameraGrid
    sample_freq: float
    n_bins: int
    speed_of_sound: float = SPEED_OF_SOUND
    weights: np.ndarray | None = None
    digest: str = field(init=False, repr=False)

    def __post_init__(self):
        if not (isinstance(self.n_bins, (int, np.integer)) and self.n_bins >= 1):
            raise AcamError(f"bins={self.n_bins} must be a positive integer")
        if not (self.sample_freq > 0 and math.isfinite(self.sample_freq)):
            raise AcamError(f"sample_freq={self.sample_freq} Hz must be positive")
        if not (self.speed_of_sound > 0 and math.isfinite(self.speed_of_sound)):
            raise AcamError(f"speed_of_sound={self.speed_of_sound} m/s must be positive")
        w = np.ones(self.geometry.n_mics) if self.weights is None else np.array(self.weights, float)
        if w.shape != (self.geometry.n_mics,):
            raise AcamError(f"{w.size} weights do not fit {self.geometry.n_mics} microphones")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise AcamError("microphone weights must be finite, >= 0, and not all zero")
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "digest", digest(
            "SteeringSpec", self.geometry.digest, self.grid.digest, float(self.sample_freq),
            int(self.n_bins), float(self.speed_of_sound), w))

    @property
    def nfft(self) -> int:
        return 2 * int(self.n_bins)

    @property
    def active(self) -> np.ndarray:
        """Indices of the microphones with a non-zero weight."""
        return np.flatnonzero(self.weights > 0)

    def frequencies(self) -> np.ndarray:
        """Bin centre frequencies, Hz [shape=(n_bins,)]."""
        return np.arange(self.n_bins) * (self.sample_freq / self.nfft)

    def gains_and_delays(self) -> tuple[np.ndarray, np.ndarray]:
        """Amplitude ``gain[p, m]`` and relative delay ``dtau[p, m]`` (s) over active microphones."""
        look = self.grid.look_points().reshape(-1, 3)
        mics = self.geometry.positions[self.active]
        r_pm = np.sqrt(((look[:, None, :] - mics[None, :, :]) ** 2).sum(-1))
        r_p0 = np.sqrt((look ** 2).sum(-1))[:, None]
        w = self.weights[self.active]
        gain = (w / w.sum())[None, :] * r_pm / r_p0
        dtau = (r_pm - r_p0) / self.speed_of_sound
        return gain, dtau


def steering_matrix(spec: SteeringSpec, xp=np, dtype=np.complex64, bins: tuple[int, int] | None = None,
                    out=None, threads: int | None = None):
    """The steering matrix of :class:`SteeringSpec` on the device of ``xp``.

    ``bins=(k0, k1)`` builds only bins ``k0..k1-1`` (callers that convert or factorise the matrix
    chunk by chunk never hold all of it); ``out`` is where to write them and ``threads`` how many
    threads fill it (CPU only; default: the usable cores).

    Returns
    -------
    array [shape=(k1 - k0, n_pixels, n_active_mics), dtype=complex64 or complex128]
    """
    gain, dtau = spec.gains_and_delays()
    domega = 2 * np.pi * spec.sample_freq / spec.nfft
    k0, k1 = bins if bins is not None else (0, spec.n_bins)
    if not 0 <= k0 < k1 <= spec.n_bins:
        raise AcamError(f"bins={bins} must lie within 0..{spec.n_bins}")
    shape = (k1 - k0, gain.shape[0], gain.shape[1])
    if xp is np:
        from ._kernels import cpu_kernels

        from concurrent.futures import ThreadPoolExecutor

        out = np.empty(shape, dtype) if out is None else out
        if out.shape != shape or out.dtype != np.dtype(dtype) or not out.flags.c_contiguous:
            raise AcamError(f"out must be a C-contiguous {np.dtype(dtype).name} array of shape {shape}")
        fill = cpu_kernels().steering_fill
        n = threads or backend.cpu_threads()
        edges = np.linspace(0, shape[1], n + 1).astype(int)
        if n == 1:
            fill(gain, dtau, k0 * domega, domega, out, 0, shape[1])
            return out
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda i: fill(gain, dtau, k0 * domega, domega, out, edges[i], edges[i + 1]), range(n)))
        return out
    real = np.float32 if np.dtype(dtype) == np.complex64 else np.float64
    out = xp.empty(shape, dtype)
    backend.gpu_steering(xp.ascontiguousarray(xp.asarray(gain, real)), xp.ascontiguousarray(xp.asarray(dtau, real)),
                          xp.asarray(np.arange(k0, k1) * domega, real), out)
    return out


def steering_chunks(spec: SteeringSpec, chunk: int, dtype=np.complex64):
    """``(k0, k1, A[k0:k1])`` for consecutive chunks of ``chunk`` bins, built on the CPU into one
    reused buffer (each chunk is valid until the next one is asked for)."""
    buf = None
    for k0 in range(0, spec.n_bins, chunk):
        k1 = min(spec.n_bins, k0 + chunk)
        if buf is None:
            buf = np.empty((min(chunk, spec.n_bins), spec.grid.n_pixels, len(spec.active)), dtype)
        yield k0, k1, steering_matrix(spec, np, dtype, (k0, k1), buf[: k1 - k0])
