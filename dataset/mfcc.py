"""MFCC compression of acoustic cubes: 512 power bins -> 12 cepstral coefficients per pixel.

The recipe of the sensor lab's code (as in the authors' reference notes), applied to each pixel's spectrum:

1. frames windowed with a Tukey window (alpha 0.75) - done by the beamformer when the cube is made
   with ``--window tukey:0.75`` (``dataset build`` does); power spectrum ``|rfft(1024)|^2`` with the
   Nyquist bin dropped -> 512 bins.  Our cubes store a normalised one-sided power
   (``c_k |Y_k|^2 / (nfft * sum(w^2))``, see :mod:`beamform.filter_and_sum`); with
   ``units='lab'`` (default) that normalisation is undone first, so the 0.001 floor below acts on the
   same numbers as in the lab's code.
2. 24 triangular mel filters spanning 0-6400 Hz, ``mel(f) = 1127 ln(1 + f / 700)``, 26 edge points
   evenly spaced in mel.  As coded, bin ``k`` is taken to lie at ``k * 12800 / 1024`` Hz (the code
   assumes a 12 800 Hz rate); ``assumed_rate=None`` uses the cube's real bin frequencies instead.
3. filter energies floored at 0.001, natural log;
4. DCT-II with orthonormal scale, coefficients c1..c12 (c0 dropped);
5. sinusoidal lifter ``1 + 11 sin(pi n / 22)`` for coefficient ``n = 1..12``;
6. NaN / inf -> 0.

One code path for NumPy and CuPy (the array module of the input is used).
"""

from __future__ import annotations

import functools

import numpy as np

from acam.beamform import backend
from acam.core.errors import AcamError

N_FILTERS = 24
N_COEFFS = 12
FMAX = 6400.0
LAB_RATE = 12800.0
FLOOR = 1e-3
LIFTER = 22


def hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, float) / 700.0)


def mel_to_hz(m):
    return 700.0 * np.expm1(np.asarray(m, float) / 1127.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(n_bins: int = 512, bin_hz: float = LAB_RATE / 1024, n_filters: int = N_FILTERS,
                   fmax: float = FMAX) -> np.ndarray:
    """Triangular mel filters over bins ``k * bin_hz``.

    Returns
    -------
    np.ndarray [shape=(n_bins, n_filters)]
    """
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(fmax), n_filters + 2))
    f = np.arange(n_bins) * bin_hz
    fb = np.zeros((n_bins, n_filters))
    for j in range(n_filters):
        lo, c, hi = edges[j], edges[j + 1], edges[j + 2]
        up = (f - lo) / (c - lo)
        down = (hi - f) / (hi - c)
        fb[:, j] = np.clip(np.minimum(up, down), 0.0, None)
    fb.setflags(write=False)
    return fb


@functools.lru_cache(maxsize=4)
def dct_matrix(n_filters: int = N_FILTERS, n_coeffs: int = N_COEFFS) -> np.ndarray:
    """Orthonormal DCT-II rows 1..n_coeffs, times the lifter: [shape=(n_filters, n_coeffs)]."""
    n = np.arange(n_filters)
    k = np.arange(1, n_coeffs + 1)
    d = np.sqrt(2.0 / n_filters) * np.cos(np.pi * k[None, :] * (2 * n[:, None] + 1) / (2 * n_filters))
    lift = 1 + (LIFTER / 2) * np.sin(np.pi * k / LIFTER)
    out = d * lift[None, :]
    out.setflags(write=False)
    return out


def lab_power_factor(nfft: int, window_sq_sum: float, n_bins: int) -> np.ndarray:
    """Per-bin factor turning a cube's normalised power back into ``|rfft|^2`` (lab units)."""
    c = np.full(n_bins, 2.0)
    c[0] = 1.0
    return nfft * window_sq_sum / c


def mfcc(power, bin_hz: float = LAB_RATE / 1024, factor=None, nonfinite: float | None = 0.0):
    """MFCCs of power spectra along the last axis.

    Parameters
    ----------
    power : array [shape=(..., n_bins)] NumPy or CuPy, power spectra (``|rfft|^2`` units unless
        ``factor`` converts them)
    bin_hz : float
        Frequency step the filterbank assumes (12.5 Hz as coded in the lab; the real one is 12).
    factor : array [shape=(n_bins,)] or None
        Multiplied into the spectra first (see :func:`lab_power_factor`); folded into the
        filterbank (in double precision), which saves a pass over the spectra.
    nonfinite : float or None
        What NaN or infinite coefficients (from NaN or infinite power) become: 0 in the lab's recipe;
        None keeps them, so a caller can refuse such input by looking at the 12 coefficients
        instead of the 512 bins.

    Returns
    -------
    array [shape=(..., 12), float32]

    The spectra are taken as one 2-D matrix (rows x bins), so each product is a single GEMM on
    either backend; on the GPU the filterbank and DCT stay on the device between calls.
    """
    xp = backend.get_xp(power)
    shape, n_bins = power.shape, power.shape[-1]
    fb, dct = _constants(xp, n_bins, float(bin_hz), factor)
    p = xp.asarray(power, xp.float32).reshape(-1, n_bins)
    energies = xp.maximum(p @ fb, xp.float32(FLOOR))
    out = xp.log(energies) @ dct
    if nonfinite is not None:
        out = xp.where(xp.isfinite(out), out, xp.float32(nonfinite))
    return out.reshape(*shape[:-1], out.shape[-1])


def _constants(xp, n_bins: int, bin_hz: float, factor):
    """Filterbank (times ``factor``) and DCT as float32 arrays of ``xp``, cached per device."""
    f = None if factor is None else np.asarray(backend.to_host(factor), float)
    if f is not None and f.shape != (n_bins,):
        raise AcamError(f"factor has shape {f.shape}; expected ({n_bins},) to match the spectra")
    device = "cpu" if xp is np else xp.cuda.Device().id
    return _constants_cached(device, n_bins, bin_hz, None if f is None else f.tobytes(), xp)


@functools.lru_cache(maxsize=16)
def _constants_cached(device, n_bins: int, bin_hz: float, factor_bytes, xp):
    fb = mel_filterbank(n_bins, bin_hz)
    if factor_bytes is not None:
        fb = np.frombuffer(factor_bytes)[:, None] * fb
    return xp.asarray(fb, xp.float32), xp.asarray(dct_matrix(), xp.float32)


def cube_mfcc_settings(attrs: dict, units: str = "lab", assumed_rate: float | None = LAB_RATE):
    """``(bin_hz, factor)`` for a cube file's attributes (see :func:`mfcc`)."""
    from acam.beamform.filter_and_sum import parse_window

    if units not in ("lab", "cube"):
        raise AcamError(f"units={units!r} must be 'lab' or 'cube'")
    nfft = int(attrs["nfft"])
    n_bins = int(attrs.get("n_bins", nfft // 2))
    if units == "lab":
        seg = min(int(attrs.get("frame_len", nfft)), nfft)
        w = parse_window(str(attrs.get("window", "boxcar")), seg)
        factor = lab_power_factor(nfft, float(np.sum(w ** 2)), n_bins)
    else:
        factor = None
    bin_hz = (assumed_rate if assumed_rate else float(attrs["sample_freq"])) / nfft
    return bin_hz, factor
