"""Steering: the focused (near-field) filter-and-sum weights of every look point and bin.

Convention (written once, kept everywhere).  A point source at ``p`` whose spectrum at the array
centre is ``S(f)`` reaches microphone ``m`` through the free-field monopole transfer function

    X_m(f) = S(f) * h[p, m](f),   h[p, m](f) = (r_p0 / r_pm) * exp(-2j pi f (r_pm - r_p0) / c)   (:func:`transfer`)

(spherical spreading relative to the array centre, NumPy's FFT sign), with ``r_pm = |p - x_m|`` and
``r_p0 = |p|``.  The filter-and-sum output for look point ``p`` is ``Y_p(f) = sum_m A[f, p, m] X_m(f)``
with

    A[f, p, m] = gain[p, m] * exp(+2j pi f (r_pm - r_p0) / c)

and ``gain`` given by the *formulation* (Sarradj 2012, "Three-dimensional acoustic source mapping
with different beamforming steering vector formulations", Adv. Acoust. Vib.; Acoular's ``steer_type``
names; ``A`` is the complex conjugate of Acoular's steering vector, whose beamformer forms ``h^H x``):

==================  =======================================================  ==========================
formulation         gain[p, m] (weights ``w``, ``W = sum_n w_n``)              a source at ``p`` reads
==================  =======================================================  ==========================
``inverse`` (II)    ``w_m / W * r_pm / r_p0``            (the default)         ``S``: its level at the centre
``classic`` (I)     ``w_m / W``                                               ``S`` times mean ``r_p0/r_pm``
``true level`` (III) ``w_m (r_p0/r_pm) / sum_n w_n (r_p0/r_pn)^2``              ``S``
``true location`` (IV) ``w_m (r_p0/r_pm) / sqrt(W sum_n w_n (r_p0/r_pn)^2)``     the peak at the right place
==================  =======================================================  ==========================

The default, formulation II ("inverse"), inverts the transfer function microphone by microphone and
averages, so a source exactly at a look point gives ``Y_p = S``: the map reads the power the source
produces at the array centre.  Weights ``w_m`` are 1 by default and 0 for bad microphones, which are
dropped from the sum.  :mod:`.psf` and :mod:`.design` use these same functions.
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
from .sensor import SPEED_OF_SOUND

DEFAULT_FORMULATION = "inverse"


def distances(points, mics) -> tuple[np.ndarray, np.ndarray]:
    """``r_pm [shape=(n_points, n_mics)]`` and ``r_p0 [shape=(n_points, 1)]``, metres.

    ``points`` [shape=(n_points, 3)] and ``mics`` [shape=(n_mics, 3)] in the camera/array frame.
    """
    points = np.atleast_2d(np.asarray(points, float))
    mics = np.asarray(mics, float)
    r_pm = np.sqrt(((points[:, None, :] - mics[None, :, :]) ** 2).sum(-1))
    return r_pm, np.sqrt((points ** 2).sum(-1))[:, None]


def transfer(r_pm, r_p0, freqs, c: float = SPEED_OF_SOUND) -> np.ndarray:
    """The monopole transfer function ``h[f, p, m]`` from a point to each microphone, relative to the
    array centre: ``(r_p0 / r_pm) exp(-2j pi f (r_pm - r_p0) / c)`` [shape=(n_freqs, n_points, n_mics)]."""
    k = 2 * np.pi * np.atleast_1d(np.asarray(freqs, float)) / c
    return (r_p0 / r_pm)[None] * np.exp(-1j * k[:, None, None] * (r_pm - r_p0)[None])


def _gain_inverse(r_pm, r_p0, w):
    return (w / w.sum()) * r_pm / r_p0


def _gain_classic(r_pm, r_p0, w):
    return np.broadcast_to(w / w.sum(), r_pm.shape).copy()


def _gain_true_level(r_pm, r_p0, w):
    a = r_p0 / r_pm
    return w * a / (w * a * a).sum(-1, keepdims=True)


def _gain_true_location(r_pm, r_p0, w):
    a = r_p0 / r_pm
    return w * a / np.sqrt(w.sum() * (w * a * a).sum(-1, keepdims=True))


#: Steering formulations (Sarradj 2012; Acoular's ``steer_type`` names) -> gain function.
FORMULATIONS = {
    "inverse": _gain_inverse,
    "classic": _gain_classic,
    "true level": _gain_true_level,
    "true location": _gain_true_location,
}


def steering_gain(r_pm, r_p0, weights, formulation: str = DEFAULT_FORMULATION) -> np.ndarray:
    """Real amplitude ``gain[p, m]`` of the steering weights (see the module's table).

    ``weights`` [shape=(n_mics,)] must be > 0 for the microphones passed in ``r_pm``.
    """
    try:
        fn = FORMULATIONS[formulation]
    except KeyError:
        raise AcamError(f"formulation={formulation!r} is not one of {', '.join(FORMULATIONS)}") from None
    return fn(np.asarray(r_pm, float), np.asarray(r_p0, float), np.asarray(weights, float))


def steering_weights(r_pm, r_p0, weights, freqs, c: float = SPEED_OF_SOUND,
                     formulation: str = DEFAULT_FORMULATION) -> np.ndarray:
    """``A[f, p, m]`` in complex128 for a few frequencies (figures, design); the hot path uses
    :func:`steering_matrix`, which builds the same values bin by bin with a phase recurrence."""
    k = 2 * np.pi * np.atleast_1d(np.asarray(freqs, float)) / c
    gain = steering_gain(r_pm, r_p0, weights, formulation)
    return gain[None] * np.exp(1j * k[:, None, None] * (r_pm - r_p0)[None])


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
    formulation : str
        One of :data:`FORMULATIONS` (default ``"inverse"``, Sarradj's formulation II).
    """

    geometry: ArrayGeometry
    grid: CameraGrid
    sample_freq: float
    n_bins: int
    speed_of_sound: float = SPEED_OF_SOUND
    weights: np.ndarray | None = None
    formulation: str = DEFAULT_FORMULATION
    digest: str = field(init=False, repr=False)

    def __post_init__(self):
        if not (isinstance(self.n_bins, (int, np.integer)) and self.n_bins >= 1):
            raise AcamError(f"bins={self.n_bins} must be a positive integer")
        if not (self.sample_freq > 0 and math.isfinite(self.sample_freq)):
            raise AcamError(f"sample_freq={self.sample_freq} Hz must be positive")
        if not (self.speed_of_sound > 0 and math.isfinite(self.speed_of_sound)):
            raise AcamError(f"speed_of_sound={self.speed_of_sound} m/s must be positive")
        if not 10.0 <= self.speed_of_sound <= 1e5:
            raise AcamError(f"speed_of_sound={self.speed_of_sound:g} m/s is not a speed of sound (10 to 100000 m/s)")
        w = np.ones(self.geometry.n_mics) if self.weights is None else np.array(self.weights, float)
        if w.shape != (self.geometry.n_mics,):
            raise AcamError(f"{w.size} weights do not fit {self.geometry.n_mics} microphones")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise AcamError("microphone weights must be finite, >= 0, and not all zero")
        if self.formulation not in FORMULATIONS:
            raise AcamError(f"formulation={self.formulation!r} is not one of {', '.join(FORMULATIONS)}")
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)
        # the default formulation leaves the digest as it was before formulations existed
        extra = () if self.formulation == DEFAULT_FORMULATION else (self.formulation,)
        object.__setattr__(self, "digest", digest(
            "SteeringSpec", self.geometry.digest, self.grid.digest, float(self.sample_freq),
            int(self.n_bins), float(self.speed_of_sound), w, *extra))

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
        r_pm, r_p0 = distances(self.grid.look_points().reshape(-1, 3), self.geometry.positions[self.active])
        gain = steering_gain(r_pm, r_p0, self.weights[self.active], self.formulation)
        return gain, (r_pm - r_p0) / self.speed_of_sound


def steering_matrix(spec: SteeringSpec, xp=np, dtype=np.complex64, bins: tuple[int, int] | None = None,
                    out=None, threads: int | None = None, gains=None):
    """The steering matrix of :class:`SteeringSpec` on the device of ``xp``.

    ``bins=(k0, k1)`` builds only bins ``k0..k1-1`` (callers that convert or factorise the matrix
    chunk by chunk never hold all of it); ``out`` is where to write them and ``threads`` how many
    threads fill it (CPU only; default: the usable cores).  ``gains``: ``spec.gains_and_delays()``
    when the caller builds many chunks (it costs about 20 ms per call on the sensor's grid).

    Returns
    -------
    array [shape=(k1 - k0, n_pixels, n_active_mics), dtype=complex64 or complex128]
    """
    gain, dtau = spec.gains_and_delays() if gains is None else gains
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
    out = xp.empty(shape, dtype)      # phase and gain in double precision on the GPU too
    backend.gpu_steering(xp.asarray(np.ascontiguousarray(gain, np.float64)),
                         xp.asarray(np.ascontiguousarray(dtau, np.float64)),
                         xp.asarray(np.arange(k0, k1) * domega, np.float64), out)
    return out


def steering_chunks(spec: SteeringSpec, chunk: int, dtype=np.complex64):
    """``(k0, k1, A[k0:k1])`` for consecutive chunks of ``chunk`` bins, built on the CPU into one
    reused buffer (each chunk is valid until the next one is asked for)."""
    buf, gains = None, spec.gains_and_delays()
    for k0 in range(0, spec.n_bins, chunk):
        k1 = min(spec.n_bins, k0 + chunk)
        if buf is None:
            buf = np.empty((min(chunk, spec.n_bins), spec.grid.n_pixels, len(spec.active)), dtype)
        yield k0, k1, steering_matrix(spec, np, dtype, (k0, k1), buf[: k1 - k0], gains=gains)
