"""Array design: an aperiodic layout optimised for the lowest worst-case sidelobe of its PSF.

The search minimises ``max over f in band of PSL(f)``, the peak sidelobe level of the point-spread
function of a source at the centre of the view (on the focus plane), over ``n_freqs`` frequencies
spread evenly across the band and the camera's field of view.  The main lobe of each frequency is
the disc around the source out to the first null of the starting layout's PSF.

Moves: one microphone at a time is displaced by a Gaussian step that shrinks over the run; a move
that breaks a constraint (inside the square aperture, outside the central clearance, at least
``min_spacing`` from every other microphone) is refused; one that lowers the objective is kept, one
that raises it is kept with the simulated-annealing probability.  Updating the PSF after a move
costs one microphone's term, so thousands of moves take seconds.  The same seed gives the same
layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.checks import number
from ..core.errors import AcamError
from ..core.progress import progress_bar
from ..core.resources import check_allocation
from .geometry import ArrayGeometry, aperiodic, check_layout, spiral, sunflower, uniform_grid
from .grid import CameraGrid
from .steering import SPEED_OF_SOUND, distances, steering_weights, transfer


class _PsfState:
    """Un-normalised beam of the centre source, term by term, for fast single-microphone updates."""

    def __init__(self, xy: np.ndarray, grid: CameraGrid, freqs: np.ndarray, c: float):
        self.look = grid.look_points().reshape(-1, 3)
        self.src = np.array([0.0, 0.0, grid.focus])
        self.freqs, self.c = np.asarray(freqs, float), c
        self.n = len(xy)
        self.terms = np.stack([self.term(p) for p in xy], 0)   # (M, F, P)
        self.beam = self.terms.sum(0)

    def term(self, p: np.ndarray) -> np.ndarray:
        """One microphone's contribution ``A[f, :, m] h[f, s, m]`` (formulation II, whose gain is
        per microphone, so a move changes one term)."""
        m = np.array([[p[0], p[1], 0.0]])
        r_pm, r_p0 = distances(self.look, m)
        r_sm, r_s0 = distances(self.src[None], m)
        a = steering_weights(r_pm, r_p0, np.ones(1), self.freqs, self.c, "inverse")[:, :, 0] / self.n
        return a * transfer(r_sm, r_s0, self.freqs, self.c)[:, 0, 0][:, None]


def _objective(beam: np.ndarray, side: np.ndarray) -> float:
    """Worst peak sidelobe level over the frequencies, dB (beam: (F, P); side: (F, P) masks)."""
    power = np.abs(beam) ** 2
    peak = power.max(1)
    sl = np.where(side, power, 0).max(1)
    with np.errstate(divide="ignore"):
        return float(np.max(10 * np.log10(np.maximum(sl, 1e-30) / peak)))


def optimise(n_mics: int = 128, aperture: float = 0.45, band=(500.0, 6000.0),
             grid: CameraGrid | None = None, min_spacing: float = 0.025, clearance: float = 0.035,
             seed: int = 0, iterations: int = 6000, n_freqs: int = 24, c: float = SPEED_OF_SOUND,
             progress: bool = False) -> ArrayGeometry:
    """An aperiodic layout minimising the worst sidelobe over ``band`` (see module docs)."""
    grid = grid or CameraGrid()
    lo, hi = band
    if not 0 < lo < hi < math.inf:
        raise AcamError(f"band {lo}-{hi} Hz: need 0 < LO < HI")
    check_layout(n_mics, aperture, clearance, min_spacing)
    number("iterations", iterations, lo=0, integer=True)
    number("n_freqs", n_freqs, lo=1, integer=True)
    number("c", c, lo=0, lo_open=True)
    check_allocation(3 * n_mics * n_freqs * grid.n_pixels * 16, f"the PSF terms of {n_mics} microphones")
    rng = np.random.default_rng(seed)
    half = aperture / 2
    start = sunflower(n_mics, aperture, clearance).positions[:, :2]
    xy = start + rng.normal(0, min_spacing / 4, start.shape)
    xy = np.clip(xy, -half, half)
    if _violations(xy, half, clearance, min_spacing):
        xy = _repair(xy, half, clearance, min_spacing, rng)
    freqs = np.linspace(lo, hi, n_freqs)
    side = _sidelobe_masks(xy, grid, freqs, c)
    bar = progress_bar(iterations, progress, "optimising layout", "move")
    best_xy = _anneal(xy, _PsfState(xy, grid, freqs, c), side, rng, iterations, half, clearance, min_spacing, bar)
    bar.update(iterations - bar.n)
    bar.close()
    return ArrayGeometry(np.column_stack([best_xy, np.zeros(n_mics)]), f"optimised{n_mics}")


def _sidelobe_masks(xy: np.ndarray, grid: CameraGrid, freqs: np.ndarray, c: float) -> np.ndarray:
    """(F, P) masks of the pixels outside each frequency's main-lobe disc, from the layout ``xy``'s PSF."""
    from .psf import _main_lobe, psf          # here: scipy.ndimage is slow to import, and the CLI imports LAYOUTS
    maps = psf(ArrayGeometry(np.column_stack([xy, np.zeros(len(xy))])), grid, freqs, c=c)
    rc = np.stack(np.meshgrid(np.arange(grid.rows), np.arange(grid.cols), indexing="ij"), -1).reshape(-1, 2)
    side = np.zeros((len(freqs), grid.n_pixels), bool)
    for i, m in enumerate(maps):
        pk = np.unravel_index(np.argmax(m), m.shape)
        lobe = _main_lobe(m, pk)
        d = np.hypot(*(rc - np.array(pk)).T)
        radius = d[lobe.reshape(-1)].max() if lobe.any() else 0.0
        side[i] = d > radius
    return side


def _anneal(xy, state: _PsfState, side, rng, iterations: int, half: float, clearance: float, min_spacing: float,
            bar, t0: float = 0.5, t1: float = 0.01) -> np.ndarray:
    """Simulated annealing of ``xy`` in place (temperature ``t0`` -> ``t1`` dB); the best layout seen."""
    best_obj = cur_obj = _objective(state.beam, side)
    best_xy = xy.copy()
    for it in range(iterations):
        frac = it / max(iterations, 1)
        temp = t0 * (t1 / t0) ** frac
        step = min_spacing * (1.0 - 0.9 * frac)
        j = int(rng.integers(len(xy)))
        new = xy[j] + rng.normal(0, step, 2)
        if it % 100 == 0:
            bar.set_postfix(worst_sidelobe=f"{best_obj:.2f} dB", refresh=False)
            bar.update(100 if it else 0)
        if np.any(np.abs(new) > half) or np.hypot(*new) < clearance:
            continue
        others = np.delete(xy, j, 0)
        if np.min(np.hypot(*(others - new).T)) < min_spacing:
            continue
        t_new = state.term(new)
        beam = state.beam - state.terms[j] + t_new
        obj = _objective(beam, side)
        if obj <= cur_obj or rng.random() < math.exp(-(obj - cur_obj) / temp):
            xy[j] = new
            state.beam = beam
            state.terms[j] = t_new
            cur_obj = obj
            if obj < best_obj:
                best_obj, best_xy = obj, xy.copy()
    return best_xy


def _violations(xy, half, clearance, min_spacing) -> bool:
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    d[np.diag_indices_from(d)] = np.inf
    return bool(np.any(np.abs(xy) > half) or np.any(np.hypot(*xy.T) < clearance) or d.min() < min_spacing)


def _repair(xy, half, clearance, min_spacing, rng, tries: int = 20000):
    """Move offending microphones to random free places until every constraint holds."""
    xy = xy.copy()
    for _ in range(tries):
        d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
        d[np.diag_indices_from(d)] = np.inf
        bad = np.flatnonzero((d.min(1) < min_spacing) | (np.hypot(*xy.T) < clearance)
                             | np.any(np.abs(xy) > half, 1))
        if bad.size == 0:
            return xy
        xy[bad[0]] = rng.uniform(-half, half, 2)
    raise AcamError(f"cannot place the microphones {min_spacing} m apart in a {2 * half} m square; "
                    "lower min_spacing or raise aperture")


# --------------------------------------------------------------------------------------- layouts
@dataclass(frozen=True, kw_only=True)
class LayoutOptions:
    """Settings of :func:`make_layout`; each layout reads the ones it uses (see :data:`LAYOUTS`)."""

    n_mics: int = 128
    aperture: float = 0.45            # side of the square, metres
    min_spacing: float = 0.025        # metres (random, optimised)
    clearance: float = 0.035          # free radius at the centre for the lens, metres
    arms: int = 8                     # spiral arms
    band: tuple = (500.0, 6000.0)     # Hz the optimiser works on
    iterations: int = 20000           # optimiser moves
    seed: int = 0


def _optimised(o: LayoutOptions, progress: bool) -> ArrayGeometry:
    return optimise(o.n_mics, o.aperture, tuple(o.band), min_spacing=o.min_spacing, clearance=o.clearance,
                    seed=o.seed, iterations=o.iterations, progress=progress)


# name -> (options, progress) -> layout: grid (uniform rectangular), spiral (multi-arm log), sunflower
# (Fermat), random (aperiodic, minimum spacing), optimised (lowest worst sidelobe over the band)
LAYOUTS = {
    "grid": lambda o, progress: uniform_grid(o.n_mics, o.aperture),
    "spiral": lambda o, progress: spiral(o.n_mics, o.aperture, o.arms, o.clearance),
    "sunflower": lambda o, progress: sunflower(o.n_mics, o.aperture, o.clearance),
    "random": lambda o, progress: aperiodic(o.n_mics, o.aperture, o.min_spacing, o.clearance, o.seed),
    "optimised": _optimised,
}


def make_layout(kind: str, options: LayoutOptions = LayoutOptions(), progress: bool = False) -> ArrayGeometry:
    """A layout of :data:`LAYOUTS` made with ``options``."""
    if kind not in LAYOUTS:
        raise AcamError(f"layout {kind!r} is not one of {', '.join(LAYOUTS)}")
    return LAYOUTS[kind](options, progress)
