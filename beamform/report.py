"""Geometry reports: tables and figures of PSF figures over frequency, for one or several arrays.

The figure (``beamform geometry report/compare -o FIG.png``) has one row per layout - the layout in
centimetres, then the point-spread function at each frequency in dB re its main lobe over the
camera's view (azimuth and elevation in degrees), with the peak sidelobe level and the beam width
in each title - and a last row with the peak sidelobe level over the band and the -3 dB beam width
over frequency.  Where the main lobe fills the whole view no sidelobe can be seen, so the sidelobe
curve starts at the first frequency that shows one, and the figure says so.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..core.errors import AcamError
from ..core.figures import DETAIL_SIZE, LABEL_SIZE, TICK_SIZE, colorbar, new_figure, save_png
from ..core.progress import progress_bar
from .geometry import ArrayGeometry
from .grid import CameraGrid
from .psf import figures, grating_lobe_frequency, grating_search_freqs, psf

PSF_FLOOR_DB = -30.0     # the PSF maps' colour scale runs from here to 0 dB
CHUNK = 8                # frequencies per PSF call (the unit of progress)


def _psf_chunks(geometry, grid, freqs, bar) -> np.ndarray:
    out = []
    for i in range(0, len(freqs), CHUNK):
        out.append(psf(geometry, grid, freqs[i:i + CHUNK]))
        bar.update(len(freqs[i:i + CHUNK]))
    return np.concatenate(out) if out else np.zeros((0, grid.rows, grid.cols))


def work_units(grid: CameraGrid, freqs, band=(500.0, 6000.0), band_step=100.0) -> int:
    """Frequencies :func:`evaluate` computes a PSF at (the unit of its progress)."""
    freqs = check_freqs(freqs, band, band_step)
    dense = np.arange(band[0], band[1] + band_step / 2, band_step)
    return len(freqs) + len(dense) + len(grating_search_freqs(band[1] * 2))


def evaluate(geometry: ArrayGeometry, grid: CameraGrid, freqs, band=(500.0, 6000.0), band_step=100.0,
             bar=None) -> dict:
    """PSF figures at ``freqs`` plus the worst sidelobe over ``band`` (every ``band_step`` Hz).

    ``bar``: a :func:`~acam.core.progress.progress_bar` advanced by one per frequency computed."""
    bar = bar if bar is not None else progress_bar(0, False, "", "")
    freqs = check_freqs(freqs, band, band_step)
    maps = _psf_chunks(geometry, grid, freqs, bar)
    rows = [figures(m, grid, f) for m, f in zip(maps, freqs)]
    dense = np.arange(band[0], band[1] + band_step / 2, band_step)
    dense_psl = np.array([figures(m, grid, f).psl_db for m, f in zip(_psf_chunks(geometry, grid, dense, bar), dense)])
    finite = np.isfinite(dense_psl)
    worst = int(np.argmax(np.where(finite, dense_psl, -np.inf))) if finite.any() else 0
    return {"geometry": geometry, "freqs": freqs, "maps": maps, "figures": rows,
            "band": band, "band_freqs": dense, "band_psl": dense_psl, "grid": grid,
            "worst_psl_db": float(dense_psl[worst]), "worst_psl_freq": float(dense[worst]),
            "grating_hz": grating_lobe_frequency(geometry, grid, fmax=band[1] * 2, bar=bar)}


def evaluate_all(geometries: list[ArrayGeometry], grid: CameraGrid, freqs, band=(500.0, 6000.0),
                 band_step: float = 100.0, progress: bool = False) -> list[dict]:
    """:func:`evaluate` for each layout, with one progress bar over all of them."""
    total = len(geometries) * work_units(grid, freqs, band, band_step)
    bar = progress_bar(total, progress, "PSF", "frequency")
    try:
        out = []
        for g in geometries:
            bar.set_description(f"PSF of {g.name}")
            out.append(evaluate(g, grid, freqs, band, band_step, bar))
        return out
    finally:
        bar.close()


def _psl_text(x) -> str:
    return "-" if not np.isfinite(x) else f"{x:.1f}"


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
        cells += [_psl_text(x.psl_db) for x in r["figures"]]
        cells += ["> view" if not np.isfinite(x.beamwidth_deg) else f"{x.beamwidth_deg:.1f} / {x.beamwidth_px:.1f}"
                  for x in r["figures"]]
        cells += ["-" if not np.isfinite(r["worst_psl_db"]) else f"{r['worst_psl_db']:.1f} at {r['worst_psl_freq']:.0f} Hz",
                  "none" if not np.isfinite(r["grating_hz"]) else f"{r['grating_hz']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "PSL: peak sidelobe level, dB re the main lobe, for a source at the centre of the view; "
             "'-': the main lobe fills the view, so no sidelobe is in it.  Width: -3 dB main-lobe width "
             "along the image row; '> view': wider than the view."]
    return "\n".join(lines + notes)


def _map_title(f: float, fig) -> str:
    psl = "no sidelobe in view" if not np.isfinite(fig.psl_db) else f"PSL {fig.psl_db:.1f} dB"
    width = "width > view" if not np.isfinite(fig.beamwidth_deg) else f"width {fig.beamwidth_deg:.1f}°"
    return f"{f / 1000:g} kHz: {psl}, {width}"


def _angle_ticks(ax, grid: CameraGrid, left: bool, bottom: bool) -> None:
    """Degree ticks on a PSF map drawn in pixel coordinates (pinhole: tan-spaced)."""
    tx, ty = math.tan(math.radians(grid.hfov) / 2), math.tan(math.radians(grid.vfov) / 2)
    az = np.array([a for a in (-20, -10, 0, 10, 20) if abs(a) < grid.hfov / 2])
    el = np.array([e for e in (-20, -10, 0, 10, 20) if abs(e) < grid.vfov / 2])
    ax.set_xticks((np.tan(np.radians(az)) / tx + 1) / 2 * grid.cols - 0.5,
                  [f"{a:g}" for a in az] if bottom else [], fontsize=TICK_SIZE - 1)
    ax.set_yticks((1 - np.tan(np.radians(el)) / ty) / 2 * grid.rows - 0.5,
                  [f"{e:g}" for e in el] if left else [], fontsize=TICK_SIZE - 1)
    if bottom:
        ax.set_xlabel("azimuth (deg)", fontsize=DETAIL_SIZE)
    if left:
        ax.set_ylabel("elevation (deg)", fontsize=DETAIL_SIZE)


def figure(results: list[dict], dpi: int = 100):
    """Layouts, PSF maps at each frequency, and PSL / beam-width curves, one row per geometry."""
    n, nf = len(results), len(results[0]["freqs"])
    grid = results[0].get("grid") or CameraGrid()
    fig = new_figure(figsize=(3.1 * (nf + 1) + 0.8, 2.7 * n + 3.6), dpi=dpi, layout="constrained")
    gs = fig.add_gridspec(n + 1, nf + 1, height_ratios=[1] * n + [1.4])
    b = results[0]["band"]
    fig.suptitle(f"Point-spread functions of {', '.join(r['geometry'].name for r in results)}: a source at the "
                 f"centre of the {grid.hfov:g}° x {grid.vfov:g}° view, {grid.focus:g} m away", fontsize=LABEL_SIZE + 1)
    im = None
    for i, r in enumerate(results):
        g = r["geometry"]
        ax = fig.add_subplot(gs[i, 0])
        ax.plot(g.positions[:, 0] * 100, g.positions[:, 1] * 100, ".", ms=4)
        ax.set_aspect("equal")
        ax.set_title(f"{g.name}: {g.n_mics} mics, min spacing {g.min_spacing * 1000:.0f} mm", fontsize=DETAIL_SIZE)
        ax.set_xlabel("x (cm)", fontsize=DETAIL_SIZE)
        ax.set_ylabel("y (cm)", fontsize=DETAIL_SIZE)
        ax.tick_params(labelsize=TICK_SIZE - 1)
        maps_axes = []
        for j, (f, m) in enumerate(zip(r["freqs"], r["maps"])):
            ax = fig.add_subplot(gs[i, j + 1])
            im = ax.imshow(10 * np.log10(np.maximum(m, 1e-12)), vmin=PSF_FLOOR_DB, vmax=0, cmap="viridis")
            ax.set_title(_map_title(f, r["figures"][j]), fontsize=DETAIL_SIZE)
            _angle_ticks(ax, grid, left=j == 0, bottom=i == n - 1)
            maps_axes.append(ax)
        colorbar(fig, im, maps_axes, "PSF, dB re main lobe", extend="min", fraction=0.02, pad=0.01)
    split = min((nf + 1) // 2 + 1, nf)          # both curve panels get at least one column
    ax1 = fig.add_subplot(gs[n, :split])
    ax2 = fig.add_subplot(gs[n, split:])
    starts = []
    for r in results:
        psl = np.asarray(r["band_psl"], float)
        ax1.plot(r["band_freqs"], np.where(np.isfinite(psl), psl, np.nan), label=r["geometry"].name)
        finite = np.flatnonzero(np.isfinite(psl))
        starts.append(r["band_freqs"][finite[0]] if finite.size else r["band_freqs"][-1])
        widths = [x.beamwidth_deg for x in r["figures"]]
        ax2.plot(r["freqs"], widths, "o-", label=r["geometry"].name)
    first = float(min(starts))
    if first > b[0]:
        ax1.axvspan(b[0], first, color="0.9", zorder=0)
        ax1.text((b[0] + first) / 2, 0.5, "no sidelobe\nin view: the\nmain lobe\nfills it", transform=ax1.get_xaxis_transform(),
                 ha="center", va="center", fontsize=DETAIL_SIZE - 1, color="0.3")
    ax1.set_xlim(b[0], b[1])
    ax1.set_title(f"Peak sidelobe level over {b[0]:g}-{b[1]:g} Hz (every {r['band_freqs'][1] - r['band_freqs'][0]:g} Hz)"
                  if len(r["band_freqs"]) > 1 else "Peak sidelobe level", fontsize=LABEL_SIZE)
    ax1.set_xlabel("frequency (Hz)", fontsize=LABEL_SIZE)
    ax1.set_ylabel("peak sidelobe level (dB re main lobe)", fontsize=LABEL_SIZE)
    ax1.legend(fontsize=DETAIL_SIZE)
    ax1.grid(alpha=0.3)
    ax2.set_title("Resolution: -3 dB main-lobe width along the image row (gaps: wider than the view)",
                  fontsize=LABEL_SIZE)
    ax2.set_xlabel("frequency (Hz)", fontsize=LABEL_SIZE)
    ax2.set_ylabel("-3 dB beam width (deg)", fontsize=LABEL_SIZE)
    ax2.grid(alpha=0.3)
    if n > 1:
        ax2.legend(fontsize=DETAIL_SIZE)
    return fig


def draw(results: list[dict], out_path, dpi: int = 100) -> None:
    """Write :func:`figure` as a PNG."""
    save_png(figure(results, dpi), out_path)


def load_geometry(path) -> ArrayGeometry:
    g = ArrayGeometry.from_file(path)
    name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return ArrayGeometry(g.positions, name)


def report_layouts(files, freqs, band=(500.0, 6000.0), output=None, grid: CameraGrid | None = None,
                   progress: bool = False, echo=None) -> tuple[list[dict], str]:
    """The geometry report of the layouts in ``files``: ``(results, markdown table)``, and the figure
    written to ``output`` when given (checked before any PSF is computed: no input may be the output).
    ``echo`` (a callable) receives the table as soon as it is known, before the figure is drawn."""
    grid = grid or CameraGrid()
    geometries = [load_geometry(f) for f in files]
    if output:
        from ..core.safeio import check_output

        check_output(output)
    results = evaluate_all(geometries, grid, list(freqs), tuple(band), progress=progress)
    text = table(results)
    if echo is not None:
        echo(text)
    if output:
        draw(results, output)
    return results, text
