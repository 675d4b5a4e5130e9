"""Pictures of acoustic cubes: a heat map of the sound arriving from each direction, over the video
frame (or a plain stand-in frame when the recording has none).

What a picture shows (``beamform show``):

- the band energy of each acoustic pixel (power summed over the bins of ``band``: the mean square
  pressure, at the array centre, of the sound arriving from that direction) in dB re the map's
  peak or, with ``absolute`` and a recording in pascals, in dB SPL (re 20 uPa);
- pixels more than ``dynamic_range`` dB below the peak are left uncoloured;
- axes in degrees: **azimuth** = atan2(x, z), positive to the right, and **elevation** =
  atan2(y, sqrt(x^2 + z^2)), positive up (camera frame: x right, y up, z forward).  The camera is a
  pinhole, so lines of equal azimuth are straight and vertical while lines of equal elevation bend
  slightly away from the horizon towards the sides: both are drawn as a dotted grid, the azimuth
  labelled on the bottom edge, the elevation on the left edge (or on the line itself where it leaves
  the picture before reaching the edge).  The top and right axes give metres on the focus plane;
- the loudest pixel (+) and the true source positions when the file records them (o);
- a title with the band, the frames drawn and the peak's direction, position and level.

The same drawing, frame after frame, makes the acoustic video (:mod:`beamform.animate`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..core.errors import AcamError
from ..core.figures import DETAIL_SIZE, LABEL_SIZE, TICK_SIZE, colorbar, new_figure, save_png
from ..core.safeio import check_output, reads_inputs
from .grid import CameraGrid
from .io import Cube
from .sensor import DISPLAY_BAND, HFOV, VFOV

P_REF = 20e-6            # Pa, the reference of dB SPL
HEAT_CMAP = "turbo"
HEAT_ALPHA = 0.6
STAND_IN_GREY = 0.82


# --------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class View:
    """What a cube file says about its picture: the camera grid, units, frames and ground truth."""

    grid: CameraGrid
    name: str
    n_frames: int
    frame_rate: float
    unit: str                    # the recording's unit ("Pa", or "" when unknown)
    truth: np.ndarray | None     # (n_sources, 3) or (n_sources, n_frames, 3), metres
    source_file: str

    @classmethod
    def of(cls, cube: Cube) -> "View":
        a = cube.attrs
        rows, cols = cube.cube.shape[1:3]
        grid = CameraGrid(rows, cols, float(a.get("hfov", HFOV)), float(a.get("vfov", VFOV)), float(a.get("focus", 2.0)))
        truth = None
        if "source_positions" in cube.file:
            t = np.asarray(cube.file["source_positions"][()], float)
            if t.ndim in (2, 3) and t.shape[-1] == 3 and np.all(np.isfinite(t)):
                truth = t
        unit = a.get("input_unit", "")
        unit = unit.decode() if isinstance(unit, bytes) else str(unit)
        return cls(grid, os.path.basename(cube.path), int(cube.cube.shape[0]), float(a.get("frame_rate", 12.0)),
                   unit, truth, str(a.get("source_file", "")))

    @property
    def half_width(self) -> float:
        """Half the focus plane's width in view, metres."""
        return self.grid.focus * math.tan(math.radians(self.grid.hfov) / 2)

    @property
    def half_height(self) -> float:
        return self.grid.focus * math.tan(math.radians(self.grid.vfov) / 2)

    @property
    def extent(self) -> tuple:
        """imshow extent in focus-plane metres (row 0 at the top)."""
        return (-self.half_width, self.half_width, -self.half_height, self.half_height)

    def truth_at(self, frame: int | None) -> np.ndarray:
        """True source positions (n, 3) at a frame (the first frame's for the mean picture)."""
        if self.truth is None:
            return np.zeros((0, 3))
        if self.truth.ndim == 2:
            return self.truth
        return self.truth[:, min(frame or 0, self.truth.shape[1] - 1)]


def direction(point) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of a point in the camera frame (see the module docs)."""
    x, y, z = (float(c) for c in point)
    return math.degrees(math.atan2(x, z)), math.degrees(math.atan2(y, math.hypot(x, z)))


def on_plane(point, focus: float) -> tuple[float, float] | None:
    """Where the line of sight to a point meets the focus plane (x, y metres), None behind the array."""
    x, y, z = (float(c) for c in point)
    if z <= 0:
        return None
    return x * focus / z, y * focus / z


# ----------------------------------------------------------------------------------------- levels
@dataclass(frozen=True)
class Peak:
    """The loudest pixel of a map: where it is and how loud."""

    row: int
    col: int
    azimuth: float           # degrees
    elevation: float         # degrees
    position: tuple          # (x, y, z) metres: the pixel's look point on the focus plane
    power: float             # band energy (input units squared)
    unit: str

    @property
    def level_db(self) -> float:
        """dB SPL for a recording in Pa, else dB re 1 (input unit)^2."""
        ref = P_REF ** 2 if self.unit == "Pa" else 1.0
        return 10 * math.log10(max(self.power, 1e-300) / ref)

    @property
    def level_text(self) -> str:
        if self.power <= 0:
            return "silent (the band holds no energy)"
        if self.unit == "Pa":
            return f"{self.level_db:.1f} dB SPL"
        return f"{self.level_db:.1f} dB re 1 (input unit)^2"

    def describe(self) -> str:
        x, y, z = self.position
        return (f"azimuth {self.azimuth:+.1f} deg, elevation {self.elevation:+.1f} deg; "
                f"x {x:+.2f} m, y {y:+.2f} m on the focus plane at {z:.2f} m; {self.level_text}")


def find_peak(energy: np.ndarray, grid: CameraGrid, unit: str) -> Peak:
    r, c = np.unravel_index(int(np.argmax(energy)), energy.shape)
    point = grid.look_points()[r, c]
    az, el = direction(point)
    return Peak(int(r), int(c), az, el, tuple(float(v) for v in point), float(energy[r, c]), unit)


@dataclass(frozen=True)
class Scale:
    """The colour scale: dB values from band energies, the colour-bar range and its label."""

    ref: float               # band energy at 0 on the scale (the peak, or (20 uPa)^2)
    vmin: float
    vmax: float
    label: str

    @classmethod
    def make(cls, peak_power: float, dynamic_range: float, absolute: bool, unit: str) -> "Scale":
        if not (dynamic_range > 0 and math.isfinite(dynamic_range)):
            raise AcamError(f"dynamic_range {dynamic_range} dB must be a positive number")
        if absolute:
            if unit != "Pa":
                raise AcamError("absolute levels need a recording in pascals (attribute unit='Pa' on the raw "
                                "file, copied into the cube as 'input_unit'); this cube's unit is "
                                + (repr(unit) if unit else "not recorded"))
            top = 10 * math.log10(max(peak_power, 1e-300) / P_REF ** 2)
            return cls(P_REF ** 2, top - dynamic_range, top, "band level, dB SPL (re 20 µPa)")
        return cls(max(peak_power, 1e-300), -dynamic_range, 0.0, "band level, dB re the peak")

    def db(self, energy: np.ndarray) -> np.ma.MaskedArray:
        """Levels in dB, masked where below the shown range."""
        db = 10 * np.log10(np.maximum(energy, 1e-300) / self.ref)
        return np.ma.masked_less(db, self.vmin)


# ---------------------------------------------------------------------------------------- drawing
def _ticks(span_deg: float) -> float:
    return 5.0 if span_deg <= 40 else 10.0 if span_deg <= 100 else 20.0


class HeatMapFigure:
    """A figure with a heat map over a background frame; :meth:`update` redraws it for a frame.

    Built once and updated for every frame of an animation, so its layout never moves.
    """

    def __init__(self, view: View, scale: Scale, band, has_video: bool, dynamic_range: float,
                 dpi: int = 110, width_in: float = 7.6, tracks: bool = False):
        self.view, self.scale, self.band = view, scale, band
        aspect = view.half_height / view.half_width
        self.fig = new_figure(figsize=(width_in, width_in * 0.68 * aspect + 2.2), dpi=dpi, layout="constrained")
        ax = self.ax = self.fig.add_subplot()
        ext = view.extent
        stand_in = np.full((2, 2), STAND_IN_GREY)
        self.bg = ax.imshow(stand_in, cmap="gray", vmin=0, vmax=1, extent=ext, origin="upper", interpolation="bilinear")
        empty = np.ma.masked_all((view.grid.rows, view.grid.cols))
        self.heat = ax.imshow(empty, cmap=HEAT_CMAP, vmin=scale.vmin, vmax=scale.vmax, alpha=HEAT_ALPHA, extent=ext,
                              origin="upper", interpolation="bilinear")
        line_colour = "white" if has_video else "0.35"
        _angle_grid(ax, view, line_colour)
        (self.track,) = ax.plot([], [], "-", color="white", lw=1.2, alpha=0.8)
        (self.truth_under,) = ax.plot([], [], "o", mfc="none", mec="black", ms=14, mew=4, alpha=0.6)
        (self.truth,) = ax.plot([], [], "o", mfc="none", mec="white", ms=14, mew=2, label="true source position")
        (self.peak,) = ax.plot([], [], "+", color="red", ms=18, mew=3, label="loudest pixel (peak)")
        self.track.set_path_effects(_outline())
        self.stamp = ax.text(0.015, 0.975, "", transform=ax.transAxes, ha="left", va="top", fontsize=LABEL_SIZE,
                             color="white", bbox=dict(boxstyle="round,pad=0.25", fc="black", alpha=0.55, lw=0))
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        f = view.grid.focus
        top = ax.secondary_xaxis("top")
        top.set_xlabel(f"x on the focus plane at {f:g} m (m)", fontsize=LABEL_SIZE)
        right = ax.secondary_yaxis("right")
        right.set_ylabel("y on the focus plane (m)", fontsize=LABEL_SIZE)
        for sec in (top, right):
            sec.tick_params(labelsize=TICK_SIZE)
        self.secondary = (top, right)
        self.colorbar = colorbar(self.fig, self.heat, ax, scale.label, cax=ax.inset_axes([1.13, 0.0, 0.035, 1.0]))
        self._legend(has_video, dynamic_range, view.truth is not None, tracks)

    def _legend(self, has_video: bool, dynamic_range: float, has_truth: bool, tracks: bool) -> None:
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles = [Line2D([], [], ls="none", marker="+", color="red", ms=11, mew=2.5, label="loudest pixel (peak)")]
        if has_truth:
            handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="0.2", ms=9, mew=1.5,
                                  label="true source position" + (" (first frame)" if tracks else "")))
        if tracks:
            handles.append(Line2D([], [], color="0.2", lw=1.2, label="true source path"))
        handles.append(Patch(fc="none", ec="0.4", label=f"no colour: more than {dynamic_range:g} dB below the peak"))
        if not has_video:
            handles.append(Patch(fc=str(STAND_IN_GREY), ec="0.4",
                                 label="grey: plain stand-in frame (the recording has no video)"))
        self.legend = self.fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=DETAIL_SIZE,
                                      frameon=False)

    def update(self, energy: np.ndarray, background: np.ndarray | None, peak: Peak, truth: np.ndarray,
               title: str, stamp: str = "", track: np.ndarray | None = None) -> None:
        """Draw one map: ``energy`` (rows, cols), ``background`` an RGB frame or None, truth (n, 3)."""
        if background is not None:
            self.bg.set_data(background)
            self.bg.set_cmap(None)
        self.heat.set_data(self.scale.db(energy))
        x, y, _ = peak.position
        self.peak.set_data([x], [y])
        pts = [on_plane(p, self.view.grid.focus) for p in truth]
        pts = [p for p in pts if p is not None]
        for art in (self.truth_under, self.truth):
            art.set_data([p[0] for p in pts], [p[1] for p in pts])
        if track is not None and len(track):
            tr = [on_plane(p, self.view.grid.focus) for p in track]
            tr = [p for p in tr if p is not None]
            self.track.set_data([p[0] for p in tr], [p[1] for p in tr])
        self.stamp.set_text(stamp)
        self.stamp.set_visible(bool(stamp))
        self.ax.set_title(title, fontsize=DETAIL_SIZE + 1)

    def rgb(self) -> np.ndarray:
        """The figure as an RGB array (height, width, 3) uint8."""
        self.fig.canvas.draw()
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        """Nothing to release: the figure is not pyplot's (kept for callers that close it)."""


def _outline():
    import matplotlib.patheffects as pe

    return [pe.withStroke(linewidth=3.5, foreground="black", alpha=0.6)]


def _angle_grid(ax, view: View, colour: str) -> None:
    """Dotted lines of equal azimuth (straight) and elevation (bent), labelled in degrees."""
    g = view.grid
    f, hw, hh = g.focus, view.half_width, view.half_height
    kw = dict(color=colour, lw=0.7, ls=":", alpha=0.8, zorder=2.5)
    step = _ticks(g.hfov)
    az = np.arange(-math.floor(g.hfov / 2 / step), math.floor(g.hfov / 2 / step) + 1) * step
    az = az[np.abs(az) < g.hfov / 2 - 1e-9]
    xs = f * np.tan(np.radians(az))
    for x in xs:
        ax.axvline(x, **kw)
    ax.set_xticks(xs, [f"{a:g}" for a in az], fontsize=TICK_SIZE)
    ax.set_xlabel("azimuth (deg, + right)", fontsize=LABEL_SIZE)
    step = _ticks(g.vfov)
    top_el = math.degrees(math.atan(hh / f))       # the largest elevation in view (at the centre column)
    els = np.arange(-math.floor(top_el / step), math.floor(top_el / step) + 1) * step
    els = els[np.abs(els) < top_el - 1e-9]
    x = np.linspace(-hw, hw, 121)
    ticks, labels = [], []
    for el in els:
        y = np.tan(np.radians(el)) * np.hypot(x, f)
        ax.plot(x, y, **kw)
        edge = float(y[0])
        if abs(edge) <= hh:
            ticks.append(edge)
            labels.append(f"{el:g}")
        else:       # the line leaves through the top or bottom: label it where it is in view
            ax.text(0, float(np.tan(np.radians(el)) * f), f"{el:g}°", color=colour, fontsize=TICK_SIZE - 1,
                    ha="center", va="bottom" if el > 0 else "top", zorder=2.6)
    ax.set_yticks(ticks, labels, fontsize=TICK_SIZE)
    ax.set_ylabel("elevation (deg, + up)", fontsize=LABEL_SIZE)


# ----------------------------------------------------------------------------------------- frames
def video_reader(cube: Cube, video_path: str | None):
    """An open ``video`` dataset of the cube's recording (or of ``video_path``) and its file, or
    (None, None).  Close the file when done."""
    import h5py

    from ..core.safeio import open_h5

    path = video_path or cube.attrs.get("source_file")
    if not video_path and (not isinstance(path, str) or not os.path.isfile(path)):
        return None, None                 # the cube's recording has moved: a plain frame
    try:
        f = open_h5(path, "video file")   # a regular HDF5 file, remembered as an input
    except AcamError:
        if video_path:
            raise
        return None, None
    v = f.get("video")
    if not (isinstance(v, h5py.Dataset) and v.ndim == 4 and v.shape[-1] == 3 and v.shape[0] > 0
            and v.dtype == np.uint8 and max(v.shape[1:3]) <= 8192):
        f.close()
        if video_path:
            raise AcamError(f"{video_path}: no 'video' dataset (n_frames, H, W, 3) uint8")
        return None, None
    return v, f


def video_frame(video, t: int | None) -> np.ndarray | None:
    if video is None:
        return None
    return np.asarray(video[0 if t is None else min(int(t), video.shape[0] - 1)])


def source_tracks(view: View) -> np.ndarray | None:
    """Moving sources' paths, one after the other with a NaN row between (None for fixed sources)."""
    if view.truth is None or view.truth.ndim != 3:
        return None
    gap = np.full((1, 3), np.nan)
    return np.concatenate([np.vstack([t, gap]) for t in view.truth])


def frame_title(view: View, band, frame: int | None, peak: Peak) -> str:
    lo, hi = band
    if frame is None:
        which = f"mean of {view.n_frames} frames (0-{view.n_frames / view.frame_rate:.2f} s)"
    else:
        which = f"frame {frame} (t = {frame / view.frame_rate:.2f} s)"
    return (f"{view.name}: sound arriving from each direction, {lo:.0f}-{hi:.0f} Hz, {which}\n"
            f"peak: azimuth {peak.azimuth:+.1f}°, elevation {peak.elevation:+.1f}° "
            f"(x {peak.position[0]:+.2f} m, y {peak.position[1]:+.2f} m at {peak.position[2]:.2f} m), "
            f"{peak.level_text}")


def show_figure(cube_path, frame: int | None = None, band=DISPLAY_BAND, dynamic_range: float = 15.0,
                video: str | None = None, absolute: bool = False, dpi: int = 110):
    """The heat-map figure of one frame (or the mean of all frames) and its :class:`Peak`."""
    with Cube.open(cube_path) as cube:
        view = View.of(cube)
        if frame is not None and not (0 <= frame < view.n_frames):
            raise AcamError(f"frame {frame} is outside the cube's {view.n_frames} frames")
        energy = cube.band_energy(band, slice(None) if frame is None else [frame]).mean(0)
        vid, vf = video_reader(cube, video)
        try:
            img = video_frame(vid, frame)
        finally:
            if vf is not None:
                vf.close()
    if not np.all(np.isfinite(energy)):
        raise AcamError(f"{cube_path}: the cube holds NaN or infinite values")
    peak = find_peak(energy, view.grid, view.unit)
    scale = Scale.make(peak.power, dynamic_range, absolute, view.unit)
    track = source_tracks(view) if frame is None else None
    hm = HeatMapFigure(view, scale, band, img is not None, dynamic_range, dpi, tracks=track is not None)
    stamp = "" if frame is None else f"t = {frame / view.frame_rate:.2f} s"
    hm.update(energy, img, peak, view.truth_at(frame), frame_title(view, band, frame, peak), stamp, track)
    return hm, peak


@reads_inputs
def show_cube(cube_path, out_path, frame: int | None = None, band=DISPLAY_BAND, dynamic_range: float = 15.0,
              video: str | None = None, dpi: int = 110, absolute: bool = False, animation=None) -> dict:
    """Draw the band energy of a cube as a heat map over its video frame; write a PNG.

    ``animation``: the path an animation of the same cube will be written to next; it is checked
    (name, folder, not an input, not the PNG's path) before the PNG is written.

    Parameters
    ----------
    frame : int or None
        Cube frame to draw; None draws the mean over all frames.
    band : (float, float)
        Hz; energy is summed over the bins inside (the paper's display band by default).
    dynamic_range : float
        dB below the peak that stay coloured.
    video : str, optional
        A raw recording with a ``video`` dataset; default: the cube's ``source_file``.
    absolute : bool
        Colour scale in dB SPL (re 20 uPa) instead of dB re the peak; needs a recording in Pa.

    Returns
    -------
    dict with ``peak`` (row, col), ``azimuth_deg``, ``elevation_deg``, ``position_m`` (x, y, z on the
    focus plane), ``level_db`` and ``level`` (text with its reference), ``text`` (one line).
    """
    check_output(out_path)                # before drawing: a folder, a FIFO or an input is refused
    if animation is not None:             # the animation's path too, before the PNG is written
        from .animate import _writer_for

        _writer_for(animation)
        check_output(animation, protect=(os.fspath(cube_path),))
        if os.path.abspath(os.fspath(animation)) == os.path.abspath(os.fspath(out_path)) or (
                os.path.exists(out_path) and os.path.exists(animation) and os.path.samefile(out_path, animation)):
            raise AcamError(f"the picture and the animation are both {os.fspath(out_path)!r}; give two paths")
    hm, peak = show_figure(cube_path, frame, band, dynamic_range, video, absolute, dpi)
    save_png(hm.fig, out_path, protect=(os.fspath(cube_path),))
    return {"peak": (peak.row, peak.col), "azimuth_deg": peak.azimuth, "elevation_deg": peak.elevation,
            "position_m": peak.position, "level_db": peak.level_db, "level": peak.level_text,
            "text": peak.describe()}
