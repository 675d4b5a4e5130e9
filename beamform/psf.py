"""Point-spread functions of an array on the camera grid, and the figures people judge arrays by.

The PSF at frequency f for a source at point s is the map the beamformer (steering convention of
:mod:`.steering`, the same functions) makes of a unit point source at s, normalised to its peak:

    B(p) = sum_m A[f, p, m] * h[f, s, m],   PSF(p) = |B(p)|^2

with ``A`` the steering weights and ``h`` the monopole transfer function (:func:`.steering.transfer`).

Figures per frequency: the -3 dB main-lobe width (degrees and acoustic pixels, along the image's
horizontal line through the source), the peak sidelobe level (dB re the main lobe: the largest value
outside the main lobe, the connected region around the peak down to its first minima), and the
grating-lobe frequency (the lowest frequency at which a lobe away from the source reaches within
3 dB of the main lobe inside the field of view).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from .geometry import ArrayGeometry
from .grid import CameraGrid
from .steering import DEFAULT_FORMULATION, SPEED_OF_SOUND, distances, steering_weights, transfer


def psf(geometry: ArrayGeometry, grid: CameraGrid, freqs, source=None, c: float = SPEED_OF_SOUND,
        weights=None, formulation: str = DEFAULT_FORMULATION) -> np.ndarray:
    """Normalised PSF maps.

    Parameters
    ----------
    freqs : array [shape=(n_freqs,)] Hz
    source : (3,) metres, default: the centre of the view at the focus distance.

    Returns
    -------
    np.ndarray [shape=(n_freqs, rows, cols)], peak 1 at the source for a well-behaved array
    """
    freqs = np.atleast_1d(np.asarray(freqs, float))
    look = grid.look_points().reshape(-1, 3)
    src = np.array([0.0, 0.0, grid.focus]) if source is None else np.asarray(source, float)
    w = np.ones(geometry.n_mics) if weights is None else np.asarray(weights, float)
    mics = geometry.positions[w > 0]
    r_pm, r_p0 = distances(look, mics)
    r_sm, r_s0 = distances(src[None], mics)
    out = np.empty((len(freqs), grid.rows, grid.cols))
    for i, f in enumerate(freqs):
        a = steering_weights(r_pm, r_p0, w[w > 0], f, c, formulation)[0]
        x = transfer(r_sm, r_s0, f, c)[0, 0]
        b = np.abs(a @ x) ** 2
        out[i] = (b / b.max()).reshape(grid.rows, grid.cols)
    return out


def _main_lobe(m: np.ndarray, peak: tuple[int, int]) -> np.ndarray:
    """Mask of the main lobe: pixels reached from the peak by steps that never go uphill."""
    mask = np.zeros(m.shape, bool)
    stack = [peak]
    mask[peak] = True
    while stack:
        r, q = stack.pop()
        for dr in (-1, 0, 1):
            for dq in (-1, 0, 1):
                rr, qq = r + dr, q + dq
                if (0 <= rr < m.shape[0] and 0 <= qq < m.shape[1] and not mask[rr, qq]
                        and m[rr, qq] <= m[r, q] * (1 + 1e-9)):
                    mask[rr, qq] = True
                    stack.append((rr, qq))
    return mask


@dataclass
class PsfFigures:
    freq: float
    beamwidth_deg: float     # -3 dB main-lobe width, horizontal, degrees (nan if wider than the view)
    beamwidth_px: float
    psl_db: float            # peak sidelobe level, dB re main lobe (0 when no sidelobe is in view)


def figures(psf_map: np.ndarray, grid: CameraGrid, freq: float) -> PsfFigures:
    """Main-lobe width and peak sidelobe level of one normalised PSF map."""
    peak = tuple(int(i) for i in np.unravel_index(np.argmax(psf_map), psf_map.shape))
    lobe = _main_lobe(psf_map, peak)
    side = psf_map[~lobe]
    psl = 10 * np.log10(side.max() / psf_map[peak]) if side.size else -np.inf
    # -3 dB width along the row through the peak, interpolated between pixels
    row = psf_map[peak[0]] / psf_map[peak]
    q = peak[1]
    left = q
    while left > 0 and row[left - 1] >= 0.5:
        left -= 1
    right = q
    while right < len(row) - 1 and row[right + 1] >= 0.5:
        right += 1
    if left == 0 or right == len(row) - 1:
        width_px = float("nan")
    else:
        lx = left - (row[left] - 0.5) / (row[left] - row[left - 1])
        rx = right + (row[right] - 0.5) / (row[right] - row[right + 1])
        width_px = float(rx - lx)
    deg_per_px = grid.hfov / grid.cols
    return PsfFigures(float(freq), width_px * deg_per_px, width_px, float(psl))


def grating_search_freqs(fmax: float, fmin: float = 200.0, step: float = 50.0) -> np.ndarray:
    """The frequencies :func:`grating_lobe_frequency` tries, lowest first."""
    return np.arange(fmin, fmax + step / 2, step)


def grating_lobe_frequency(geometry: ArrayGeometry, grid: CameraGrid, fmax: float,
                           fmin: float = 200.0, step: float = 50.0, c: float = SPEED_OF_SOUND,
                           bar=None) -> float:
    """Lowest frequency (Hz) at which a lobe away from the source reaches within 3 dB of the main
    lobe inside the view; ``inf`` when none does up to ``fmax``.  ``bar`` (a progress bar) advances
    by one per frequency tried, and to the end of the search when it stops early."""
    freqs = grating_search_freqs(fmax, fmin, step)
    done = 0
    try:
        for chunk in np.array_split(freqs, max(1, len(freqs) // 16)):
            maps = psf(geometry, grid, chunk, c=c)
            for f, m in zip(chunk, maps):
                peak = np.unravel_index(np.argmax(m), m.shape)
                lobe = _main_lobe(m, peak)
                labels, n = scipy.ndimage.label(m >= 0.5)
                if n > 1 and np.any((m >= 0.5) & ~lobe & (labels != labels[peak])):
                    return float(f)
            done += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
        return float("inf")
    finally:
        if bar is not None:
            bar.update(len(freqs) - done)
