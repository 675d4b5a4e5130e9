"""The hot path: frames of a recording -> acoustic cube (power per pixel and bin).

Stateless functions do the maths (:func:`frame_spectra`, :func:`steered_power`); the
:class:`Beamformer` holds the steering matrix built once per setting and calls them.  The same code
runs on NumPy (CPU) and CuPy (GPU): only the two fused kernels differ per backend.

Frames and bins
---------------
Video frame ``t`` covers ``L = floor(sample_freq / frame_rate)`` samples starting at
``round(t * sample_freq / frame_rate)`` (``t * L`` when the ratio is an integer: 1024 for the
sensor).  With ``n_bins`` bins the FFT has ``nfft = 2 * n_bins`` points.  A frame shorter than
``nfft`` is windowed and zero-padded; a longer one is cut into ``L // nfft`` blocks of ``nfft``
samples (the remainder is dropped) whose powers are averaged.

Power convention
----------------
``cube[t, row, col, k] = c_k * mean_j |Y_k|^2 / (nfft * sum(window^2))`` with ``c_0 = 1`` and
``c_k = 2`` otherwise: a one-sided power spectrum whose sum over bins is the mean square of the
signal at the array centre coming from that look point (Parseval; Pa^2 for a recording in Pa).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import backend
from ..core.errors import AcamError
from .steering import SteeringSpec, steering_matrix

def _cosine_sum(*coef):
    """A periodic generalised-cosine window ``sum_k (-1)^k coef[k] cos(k x)`` (hann, hamming, blackman)."""
    def window(length: int, alpha: float | None = None) -> np.ndarray:
        x = 2 * np.pi * np.arange(length) / length       # periodic: one period over length + 1 points
        return sum((-1) ** k * c * np.cos(k * x) for k, c in enumerate(coef)) + np.zeros(length)
    return window


def _boxcar(length: int, alpha: float | None = None) -> np.ndarray:
    return np.ones(length)


def _tukey(length: int, alpha: float | None = None) -> np.ndarray:
    alpha = 0.75 if alpha is None else alpha
    if alpha == 0:
        return np.ones(length)
    m = length + 1                                   # periodic = symmetric of length + 1, truncated
    k = np.arange(m)
    w = np.ones(m)
    edge = alpha * (m - 1) / 2
    lo = k < edge
    hi = k > (m - 1) - edge
    w[lo] = 0.5 * (1 + np.cos(np.pi * (2 * k[lo] / (alpha * (m - 1)) - 1)))
    w[hi] = 0.5 * (1 + np.cos(np.pi * (2 * k[hi] / (alpha * (m - 1)) - 2 / alpha + 1)))
    return w[:length]


# name -> window(length, alpha): periodic analysis windows; only tukey takes a parameter
WINDOWS = {
    "boxcar": _boxcar,
    "hann": _cosine_sum(0.5, 0.5),
    "hamming": _cosine_sum(0.54, 0.46),
    "blackman": _cosine_sum(0.42, 0.5, 0.08),
    "tukey": _tukey,
}
PARAMETRIC_WINDOWS = ("tukey",)


def parse_window(name: str, length: int) -> np.ndarray:
    """A periodic analysis window (as ``scipy.signal.get_window``) from :data:`WINDOWS`: ``boxcar``,
    ``hann``, ``hamming``, ``blackman`` or ``tukey[:alpha]`` (alpha defaults to 0.75, the sensor
    lab's MFCC window).  Written out here because importing scipy.signal costs 0.6 s per command."""
    base, _, arg = str(name).partition(":")
    if base not in WINDOWS:
        raise AcamError(f"window={name!r} is not one of {', '.join(WINDOWS)} (tukey:ALPHA allowed)")
    if arg and base not in PARAMETRIC_WINDOWS:
        raise AcamError(f"window={name!r}: only tukey takes a parameter")
    alpha = None
    if arg:
        try:
            alpha = float(arg)
        except ValueError:
            raise AcamError(f"window={name!r}: tukey alpha must be a number") from None
        if not 0 <= alpha <= 1:
            raise AcamError(f"window={name!r}: tukey alpha must lie in [0, 1]")
    return WINDOWS[base](length, alpha)


def frame_layout(sample_freq: float, frame_rate: float, nfft: int) -> tuple[int, int, int]:
    """``(frame_len, segment_len, n_segments)`` for frames of a recording (see module docs)."""
    if not (frame_rate > 0 and math.isfinite(frame_rate)):
        raise AcamError(f"frame_rate={frame_rate} must be a positive number of frames per second")
    frame_len = int(math.floor(sample_freq / frame_rate + 1e-9))
    if frame_len < 1:
        raise AcamError(f"frame_rate={frame_rate} is higher than the sample rate {sample_freq} Hz")
    if frame_len >= nfft:
        return frame_len, nfft, frame_len // nfft
    return frame_len, frame_len, 1


def frame_starts(n_samples: int, sample_freq: float, frame_rate: float) -> np.ndarray:
    """First sample of every complete frame of a recording of ``n_samples`` samples."""
    frame_len = frame_layout(sample_freq, frame_rate, 1)[0]
    ratio = sample_freq / frame_rate
    n = int(math.floor((n_samples - frame_len) / ratio + 1e-9)) + 1 if n_samples >= frame_len else 0
    starts = np.floor(np.arange(n) * ratio + 0.5).astype(np.int64)
    return starts[starts + frame_len <= n_samples]


def frame_spectra(frames, window, nfft: int, n_bins: int, n_segments: int):
    """Windowed spectra of frames, laid out for the steering product.

    Parameters
    ----------
    frames : array [shape=(n_frames, frame_len, n_mics), real]
    window : array [shape=(segment_len,)] or None (rectangular: no multiplication)
    nfft, n_bins, n_segments : int
        From :func:`frame_layout`; ``segment_len * n_segments <= frame_len``.

    Returns
    -------
    array [shape=(n_bins, n_mics, n_frames * n_segments), complex]
        Column ``b * n_segments + j`` is segment ``j`` of frame ``b``.
    """
    xp = backend.get_xp(frames)
    n_frames, _, n_mics = frames.shape
    seg = min(frames.shape[1] // n_segments, nfft)
    x = frames[:, : seg * n_segments, :].reshape(n_frames * n_segments, seg, n_mics)
    if window is not None:
        x = x * window[None, :, None]
    spec = backend.rfft(x, nfft, axis=1)[:, :n_bins, :]
    return xp.ascontiguousarray(spec.transpose(1, 2, 0))


def steered_power(A, X, scale, out, n_segments: int, chunk: int | None = None, threads: int | None = None):
    """``out[b, p, k] = scale[k] * sum_j |sum_m A[k, p, m] X[k, m, b * n_segments + j]|^2``.

    One complex matrix product per bin (look points x microphones times microphones x columns),
    done in chunks of ``chunk`` bins (default: 32 on the CPU; on the GPU as many as keep a chunk's
    output under 512 MiB, :func:`acam.beamform.backend.gpu_chunk`); each chunk's power, segment average and transposition to the
    bins-last cube layout are fused in one kernel.  On the CPU, ``threads`` workers (default: the
    usable cores) take interleaved chunks, each running single-threaded BLAS, which keeps every core
    busy without BLAS and kernel threads competing.

    Parameters
    ----------
    A : array [shape=(n_bins, n_pixels, n_mics), complex]
    X : array [shape=(n_bins, n_mics, n_frames * n_segments), complex]
    scale : array [shape=(n_bins,), real]
    out : array [shape=(n_frames, n_pixels, n_bins), real], written in place
    """
    n_bins, n_pix, _ = A.shape

    def product(k0, k1, z):
        backend.get_xp(A).matmul(A[k0:k1], X[k0:k1], out=z)

    return power_by_chunks(product, n_bins, n_pix, X.shape[2], A.dtype, scale, out, n_segments, chunk, threads,
                           backend.get_xp(A))


def power_by_chunks(product, n_bins: int, n_pix: int, n_cols: int, dtype, scale, out, n_segments: int,
                    chunk: int | None = None, threads: int | None = None, xp=np):
    """The chunk loop shared by every steering operator: ``product(k0, k1, z)`` writes the complex
    filter-and-sum output of bins ``k0..k1-1`` into ``z`` [shape=(k1 - k0, n_pixels, n_cols)], then
    the fused kernel squares, averages segments and transposes it into ``out`` (bins last).

    On the CPU, ``threads`` workers (default: the usable cores) take interleaved chunks, each with
    single-threaded BLAS, so BLAS threads and kernel threads never compete for the cores.
    """
    if xp is not np:
        chunk = chunk or backend.gpu_chunk(n_bins, n_pix, n_cols, np.dtype(dtype).itemsize)
        z = xp.empty((min(chunk, n_bins), n_pix, n_cols), dtype)
        for k0 in range(0, n_bins, chunk):
            k1 = min(n_bins, k0 + chunk)
            product(k0, k1, z[: k1 - k0])
            backend.gpu_power_transpose(z[: k1 - k0], scale, out, k0, n_segments)
        return out

    from threadpoolctl import threadpool_limits

    from ._kernels import cpu_kernels

    power_transpose = cpu_kernels().power_transpose
    chunk = chunk or 32
    n_workers = max(1, min(threads or backend.cpu_threads(), -(-n_bins // chunk)))

    def work(w: int) -> None:
        z = np.empty((min(chunk, n_bins), n_pix, n_cols), dtype)
        for k0 in range(w * chunk, n_bins, n_workers * chunk):
            k1 = min(n_bins, k0 + chunk)
            zc = z[: k1 - k0]
            product(k0, k1, zc)
            power_transpose(zc.view(zc.real.dtype), scale, out, k0, n_segments)

    with threadpool_limits(1, user_api="blas"):
        if n_workers == 1:
            work(0)
        else:
            with ThreadPoolExecutor(n_workers) as pool:
                list(pool.map(work, range(n_workers)))
    return out


class Beamformer:
    """Filter-and-sum beamformer: holds the steering matrix of one setting, turns frames into cubes.

    Parameters
    ----------
    spec : SteeringSpec
    frame_rate : float
        Video frames per second; one acoustic image per frame.
    window : str
        Analysis window (:func:`parse_window`), default ``boxcar``.
    device : str
        ``auto`` (GPU when CuPy sees one), ``cpu`` or ``cuda``.
    precision : str
        ``single`` (complex64 maths, float32 cube), ``double``, or a reduced precision of the steering
        product, ``bf16`` or ``bf16x3`` (:mod:`acam.beamform.reduced`; float32 cube).  Where the CPU
        cannot run it, :attr:`precision` says what runs and :attr:`precision_note` why.
    tolerance : float
        0 (default): the exact steering product.  Above 0: the low-rank operator of
        :mod:`beamform.lowrank`, truncated at ``tolerance`` times each bin's largest singular value.
    """

    def __init__(self, spec: SteeringSpec, frame_rate: float = 12.0, window: str = "boxcar",
                 device: str = "auto", precision: str = "single", threads: int | None = None,
                 tolerance: float = 0.0):
        from .reduced import precision_of, resolve

        precision_of(precision)
        if not 0 <= tolerance < 1:
            raise AcamError(f"tolerance={tolerance} must lie in [0, 1) (0 = the exact path)")
        self.tolerance = float(tolerance)
        self._lowrank = None
        self._reduced = None
        self.spec = spec
        self.frame_rate = float(frame_rate)
        self.window_name = window
        self.device = backend.resolve_device(device)
        self.xp = backend.xp_for(self.device)
        self.precision_requested = precision
        self.precision, self.precision_note = resolve(precision, self.device)
        mode = precision_of(self.precision)
        if mode.reduced and self.device != "cpu":
            raise AcamError(f"precision={precision!r} on the GPU is not built yet (see acam.beamform.reduced."
                            "gpu_product); use precision='single' there")
        if mode.reduced and tolerance:
            raise AcamError(f"precision={precision!r} with tolerance={tolerance} (low-rank) is not built yet; "
                            "use one of them")
        self.threads = threads
        self.progress = False            # a progress bar while the low-rank factors are computed
        self.real_dtype, self.complex_dtype = mode.real, mode.complex
        self.frame_len, seg, self.n_segments = frame_layout(spec.sample_freq, frame_rate, spec.nfft)
        win = parse_window(window, seg)
        self.window = self.xp.asarray(win, self.real_dtype)
        k = np.full(spec.n_bins, 2.0)
        k[0] = 1.0
        scale = k / (spec.nfft * float(np.sum(win ** 2)) * self.n_segments)
        self.scale = self.xp.asarray(scale, self.real_dtype)
        self._steering = None

    @property
    def steering(self):
        """The steering matrix [shape=(n_bins, n_pixels, n_active_mics)], built on first use."""
        if self._steering is None:
            self._steering = steering_matrix(self.spec, self.xp, self.complex_dtype)
        return self._steering

    @property
    def lowrank(self):
        """The truncated factors (:mod:`beamform.lowrank`) when ``tolerance > 0``, else None."""
        if self.tolerance == 0:
            return None
        if self._lowrank is None:
            from .lowrank import factorise

            self._lowrank = factorise(self.spec, self.tolerance, xp=self.xp, dtype=self.complex_dtype,
                                      progress=self.progress, threads=self.threads)
        return self._lowrank

    @property
    def reduced(self):
        """The steering operands of a reduced precision (:mod:`acam.beamform.reduced`), else None."""
        from .reduced import ReducedSteering, precision_of

        if not precision_of(self.precision).reduced:
            return None
        if self._reduced is None:
            self._reduced = ReducedSteering(self.spec, self.precision)
        return self._reduced

    def prepare(self) -> None:
        """Build what :meth:`process` needs (steering matrix, its low-rank factors or its reduced-precision
        operands) now."""
        if self.tolerance:
            self.lowrank
        elif self.reduced is None:
            self.steering

    @property
    def cube_shape_per_frame(self) -> tuple[int, int, int]:
        return (self.spec.grid.rows, self.spec.grid.cols, self.spec.n_bins)

    def flops_per_frame(self) -> float:
        """Real floating-point operations of the steering product per frame (8 per complex MAC)."""
        n_bins, n_pix, n_mics = self.spec.n_bins, self.spec.grid.n_pixels, len(self.spec.active)
        if self.tolerance:
            return self.lowrank.flops_per_column(n_pix, n_mics) * self.n_segments
        return 8.0 * n_bins * n_pix * n_mics * self.n_segments

    def process(self, frames, out=None):
        """Acoustic images of a block of frames.

        Parameters
        ----------
        frames : array [shape=(n_frames, frame_len, n_channels)]
            NumPy or CuPy; all channels of the recording (inactive ones are dropped here).
        out : array [shape=(n_frames, rows, cols, n_bins)], optional
            Where to write (same device as the beamformer).

        Returns
        -------
        array [shape=(n_frames, rows, cols, n_bins)]
        """
        xp = self.xp
        n_frames, frame_len, n_ch = frames.shape
        if frame_len != self.frame_len:
            raise AcamError(f"frames have {frame_len} samples; this beamformer expects {self.frame_len}")
        if n_ch != self.spec.geometry.n_mics:
            raise AcamError(f"{n_ch} channels do not fit {self.spec.geometry.n_mics} microphones")
        active = self.spec.active
        x = xp.asarray(frames)
        x = x[:, :, active] if len(active) < n_ch else x
        x = x.astype(self.real_dtype, copy=False)
        window = None if self.window_name == "boxcar" else self.window
        X = frame_spectra(x, window, self.spec.nfft, self.spec.n_bins, self.n_segments)
        X = X.astype(self.complex_dtype, copy=False)
        rows, cols, n_bins = self.cube_shape_per_frame
        if out is None:
            out = xp.empty((n_frames, rows, cols, n_bins), self.real_dtype)
        elif (out.shape != (n_frames, rows, cols, n_bins) or out.dtype != self.real_dtype
              or not out.flags.c_contiguous or backend.get_xp(out) is not xp):
            raise AcamError(f"out must be a C-contiguous {np.dtype(self.real_dtype).name} array of shape "
                            f"{(n_frames, rows, cols, n_bins)} on the beamformer's device")
        flat = out.reshape(n_frames, rows * cols, n_bins)
        if self.tolerance:
            from .lowrank import steered_power_lowrank

            steered_power_lowrank(self.lowrank, X, self.scale, flat, self.n_segments, threads=self.threads)
        elif self.reduced is not None:
            from .reduced import steered_power_reduced

            steered_power_reduced(self.reduced, X, self.scale, flat, self.n_segments, threads=self.threads)
        else:
            steered_power(self.steering, X, self.scale, flat, self.n_segments, threads=self.threads)
        return out
