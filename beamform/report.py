"""Geometry reports: tables and figures of PSF figures over frequency, for one or several arrays."""

from __future__ import annotations

import os

import numpy as np

from ..core.errors import AcamError
from .geometry import ArrayGeometry
from .grid import CameraGrid
from .io import atomic_output
from .psf import figures, grating_lobe_frequency, psf


def evaluate(geometry: ArrayGeometry, grid: CameraGrid, freqs, band=(500.0, 6000.0), band_step=100.0) -> dict:
    """PSF figures at ``freqs`` plus the worst sidelobe over ``band`` (every ``band_step`` Hz)."""
    freqs = check_freqs(freqs, band, band_step)
    maps = psf(geometry, grid, freqs)
    rows = [figures(m, grid, f) for m, f in zip(maps, freqs)]
    dense = np.arange(band[0], band[1] + band_step / 2, band_step)
    dense_psl = np.array([figures(m, grid, f).psl_db for m, f in zip(psf(geometry, grid, dense), dense)])
    worst = int(np.argmax(dense_psl))
    return {"geometry": geometry, "freqs": freqs, "maps": maps, "figures": rows,
            "band": band, "band_freqs": dense, "band_psl": dense_psl,
            "worst_psl_db": float(dense_psl[worst]), "worst_psl_freq": float(dense[worst]),
            "grating_hz": grating_lobe_frequency(geometry, grid, fmax=band[1] * 2)}


MAX_FREQS, MAX_BAND_STEPS = 32, 2000


def check_freqs(freqs, band, band_step) -> np.ndarray:
    """Refuse frequencies and bands a report cannot be made of (not positive, too many)."""
    freqs = np.asarray(freqs, float).reshape(-1)
    if not 1 <= freqs.size <= MAX_FREQS or not np.all(np.isfinite(freqs) & (freqs > 0)):
        raise AcamError(f"freqs={[float(x) for x in freqs]} must be 1 to {MAX_FREQS} positive frequencies (Hz)")
    lo, hi = band
    if not (0 < lo < hi < np.inf and band_step > 0 and (hi - lo) / band_step <= MAX_BAND_STEPS):
        raise AcamError(f"band={lo:g}-{hi:g} Hz in steps of {band_step:g} Hz: need 0 < LO < HI and at most "
                        f"{MAX_BAND_STEPS} steps")
    return freqs


def table(results: list[dict]) -> str:
    """A markdown table: one row per geometry, PSL and beam width per frequency, worst PSL in band."""
    freqs = results[0]["freqs"]
    head = ["array", "mics", "min spacing (mm)"]
    head += [f"PSL {f / 1000:g} kHz (dB)" for f in freqs] + [f"width {f / 1000:g} kHz (deg / px)" for f in freqs]
    b = results[0]["band"]
    head += [f"worst PSL {b[0]:g}-{b[1]:g} Hz (dB)", "grating lobes from (Hz)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        g = r["geometry"]
        cells = [g.name, str(g.n_mics), f"{g.min_spacing * 1000:.1f}"]
        cells += ["-" if not np.isfinite(x.psl_db) else f"{x.psl_db:.1f}" for x in r["figures"]]
        cells += ["> view" if not np.isfinite(x.beamwidth_deg) else f"{x.beamwidth_deg:.1f} / {x.beamwidth_px:.1f}"
                  for x in r["figures"]]
        cells += [f"{r['worst_psl_db']:.1f} at {r['worst_psl_freq']:.0f} Hz",
                  "none" if not np.isfinite(r["grating_hz"]) else f"{r['grating_hz']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw(results: list[dict], out_path, dpi: int = 100) -> None:
    """Layouts, PSF maps at each frequency, and PSL / beam-width curves, one row per geometry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, nf = len(results), len(results[0]["freqs"])
    fig = plt.figure(figsize=(3.0 * (nf + 1), 2.6 * n + 3.0), dpi=dpi)
    gs = fig.add_gridspec(n + 1, nf + 1, height_ratios=[1] * n + [1.3])
    for i, r in enumerate(results):
        g = r["geometry"]
        ax = fig.add_subplot(gs[i, 0])
        ax.plot(g.positions[:, 0] * 100, g.positions[:, 1] * 100, ".", ms=4)
        ax.set_aspect("equal")
        ax.set_title(f"{g.name} ({g.n_mics} mics)", fontsize=9)
        ax.set_xlabel("x (cm)", fontsize=8)
        for j, (f, m) in enumerate(zip(r["freqs"], r["maps"])):
            ax = fig.add_subplot(gs[i, j + 1])
            ax.imshow(10 * np.log10(np.maximum(m, 1e-6)), vmin=-30, vmax=0, cmap="viridis")
            ax.set_title(f"{f / 1000:g} kHz, PSL {r['figures'][j].psl_db:.1f} dB", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    split = min((nf + 1) // 2 + 1, nf)          # both curve panels get at least one column
    ax1 = fig.add_subplot(gs[n, :split])
    ax2 = fig.add_subplot(gs[n, split:])
    for r in results:
        ax1.plot(r["band_freqs"], r["band_psl"], label=r["geometry"].name)
        ax2.plot(r["freqs"], [x.beamwidth_deg for x in r["figures"]], "o-", label=r["geometry"].name)
    ax1.set_xlabel("frequency (Hz)")
    ax1.set_ylabel("peak sidelobe level (dB)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("frequency (Hz)")
    ax2.set_ylabel("-3 dB beam width (deg)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_output(out_path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def load_geometry(path) -> ArrayGeometry:
    g = ArrayGeometry.from_file(path)
    name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return ArrayGeometry(g.positions, name)
