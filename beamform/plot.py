"""Pictures: acoustic heat maps over the video frame (or a plain frame).

Matplotlib is used with its file-only Agg backend, so no screen is needed.
"""

from __future__ import annotations

import os

import numpy as np

from ..core.errors import AcamError
from .grid import CameraGrid
from .io import Cube, atomic_output
from .sensor import DISPLAY_BAND, HFOV, VFOV



def _video_frame(cube: Cube, t: int | None, video_path: str | None):
    """The RGB video frame for cube frame ``t`` (mean frame when ``t`` is None), or None."""
    import h5py

    path = video_path or cube.attrs.get("source_file")
    if not path or not os.path.isfile(str(path)):
        return None
    try:
        with h5py.File(path, "r") as f:
            if "video" not in f:
                return None
            v = f["video"]
            if v.ndim != 4 or v.shape[-1] != 3:
                return None
            i = 0 if t is None else min(int(t), v.shape[0] - 1)
            return np.asarray(v[i])
    except OSError:
        return None


def show_cube(cube_path, out_path, frame: int | None = None, band=DISPLAY_BAND, dynamic_range: float = 15.0,
              video: str | None = None, dpi: int = 110) -> dict:
    """Draw the band energy of a cube as a heat map over its video frame; write a PNG.

    Parameters
    ----------
    frame : int or None
        Cube frame to draw; None draws the mean over all frames.
    band : (float, float)
        Hz; energy is summed over the bins inside (the paper's display band by default).
    dynamic_range : float
        dB below the peak that stay visible; quieter pixels are transparent.
    video : str, optional
        A raw recording with a ``video`` dataset; default: the cube's ``source_file``.

    Returns
    -------
    dict with ``peak`` (row, col) and ``peak_db`` of the drawn map.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if dynamic_range <= 0:
        raise AcamError(f"dynamic range {dynamic_range} dB must be positive")
    with Cube.open(cube_path) as cube:
        n = cube.cube.shape[0]
        if frame is not None and not (0 <= frame < n):
            raise AcamError(f"frame {frame} is outside the cube's {n} frames")
        energy = cube.band_energy(band, slice(None) if frame is None else [frame]).mean(0)
        rows, cols = energy.shape
        a = cube.attrs
        grid = CameraGrid(rows, cols, float(a.get("hfov", HFOV)), float(a.get("vfov", VFOV)),
                          float(a.get("focus", 2.0)))
        truth = cube.file["source_positions"][()] if "source_positions" in cube.file else None
        img = _video_frame(cube, frame, video)
    if not np.all(np.isfinite(energy)):
        raise AcamError(f"{cube_path}: the cube holds NaN or infinite values")
    peak_val = float(energy.max())
    db = 10 * np.log10(np.maximum(energy, 1e-30) / max(peak_val, 1e-30))
    masked = np.ma.masked_less(db, -dynamic_range)
    h, w = (img.shape[0], img.shape[1]) if img is not None else (rows * 10, cols * 10)
    fig, ax = plt.subplots(figsize=(w / dpi * 1.25 + 1.5, h / dpi * 1.25), dpi=dpi)
    if img is not None:
        ax.imshow(img, extent=(0, w, h, 0))
    else:
        ax.imshow(np.full((rows, cols), 0.85), cmap="gray", vmin=0, vmax=1, extent=(0, w, h, 0))
        for c in range(0, cols + 1, 6):
            ax.axvline(c * w / cols, color="white", lw=0.5)
        for r in range(0, rows + 1, 6):
            ax.axhline(r * h / rows, color="white", lw=0.5)
    hm = ax.imshow(masked, cmap="jet", vmin=-dynamic_range, vmax=0, alpha=0.6, extent=(0, w, h, 0),
                   interpolation="bilinear")
    pr, pc = np.unravel_index(int(np.argmax(energy)), energy.shape)
    ax.plot((pc + 0.5) * w / cols, (pr + 0.5) * h / rows, "+", color="red", ms=18, mew=3, label="peak")
    if truth is not None and truth.size:
        pts = truth if truth.ndim == 2 else truth[:, (frame or 0) if frame is not None else 0]
        for i, p in enumerate(pts):
            if p[2] > 0:
                r, c = grid.project(p)
                ax.plot((c + 0.5) * w / cols, (r + 0.5) * h / rows, "o", mfc="none", mec="white", ms=14,
                        mew=2, label="source (truth)" if i == 0 else None)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    which = "mean of all frames" if frame is None else f"frame {frame}"
    ax.set_title(f"{os.path.basename(os.fspath(cube_path))}: {band[0]:.0f}-{band[1]:.0f} Hz, {which}")
    ax.legend(loc="lower right", fontsize=8, framealpha=0.6)
    fig.colorbar(hm, ax=ax, label="dB re peak", fraction=0.035, pad=0.02)
    fig.tight_layout()
    try:
        with atomic_output(out_path, protect=(os.fspath(cube_path),)) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return {"peak": (int(pr), int(pc)), "peak_db": 10 * np.log10(max(peak_val, 1e-30))}
