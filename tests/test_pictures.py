"""What the pictures say: axis labels, colour bars, titles and legends read back from the matplotlib
figures; the printed peak (direction, position, level) against the simulated source; the acoustic
video's frame count, size and timing; the geometry figures."""

from __future__ import annotations

import math
import os
import subprocess

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acam.beamform import CameraGrid, write_raw
from acam.beamform.pipeline import RunSettings, beamform_file
from acam.beamform.simulate import Scene, SourceSpec, simulate
from acam.cli import beamform_group
from acam.core.errors import AcamError

GRID = CameraGrid()
# a source exactly on the look point of pixel (12, 33) at the focus distance
SOURCE = tuple(float(v) for v in GRID.look_points()[12, 33])
BINS = 64


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 0.5 s recording in Pa of one noise source (amplitude 1) with a 4-frame video, its cube, and
    the same cube without a unit or a video."""
    folder = tmp_path_factory.mktemp("pictures")
    rec = simulate(Scene(sources=(SourceSpec(SOURCE, "noise"),), duration=0.5))
    n_frames = 6
    video = np.zeros((n_frames, 48, 64, 3), np.uint8)
    video[..., 1] = 90
    raw = folder / "raw.h5"
    write_raw(raw, rec["time_data"], rec["sample_freq"], rec["mic_positions"], 12.0, video=video,
              source_positions=rec["source_positions"], attrs={"unit": "Pa", "hfov": 60.0, "vfov": 45.0})
    plain = folder / "plain.h5"       # no video, no unit
    write_raw(plain, rec["time_data"], rec["sample_freq"], rec["mic_positions"], 12.0,
              source_positions=rec["source_positions"])
    cubes = {}
    for name, path in (("video", raw), ("plain", plain)):
        cubes[name] = folder / f"{name}.cube.h5"
        beamform_file(path, cubes[name], RunSettings(bins=BINS))
    return {"folder": folder, "raw": raw, "video": cubes["video"], "plain": cubes["plain"]}


def _texts(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()] if fig.legends else []


def test_heat_map_axes_colour_bar_legend_and_title(scene):
    from acam.beamform.plot import show_figure

    hm, peak = show_figure(scene["plain"])
    try:
        ax = hm.ax
        assert ax.get_xlabel() == "azimuth (deg, + right)"
        assert ax.get_ylabel() == "elevation (deg, + up)"
        top, right = hm.secondary
        assert top.get_xlabel() == "x on the focus plane at 2 m (m)"
        assert right.get_ylabel() == "y on the focus plane (m)"
        assert hm.colorbar.ax.get_ylabel() == "band level, dB re the peak"
        assert hm.colorbar.vmin == -15 and hm.colorbar.vmax == 0
        title = ax.get_title()
        assert "plain.cube.h5" in title and "900-6400 Hz" in title and "mean of 6 frames" in title
        assert f"azimuth {peak.azimuth:+.1f}°" in title and "dB re 1 (input unit)^2" in title
        legend = _texts(hm.fig)
        assert "loudest pixel (peak)" in legend and "true source position" in legend
        assert "no colour: more than 15 dB below the peak" in legend
        assert "grey: plain stand-in frame (the recording has no video)" in legend
        # the degree ticks sit where those directions meet the focus plane
        ticks = dict(zip([t.get_text() for t in ax.get_xticklabels()], ax.get_xticks()))
        assert ticks["20"] == pytest.approx(2.0 * math.tan(math.radians(20)))
    finally:
        hm.close()


def test_heat_map_over_video_in_db_spl(scene):
    from acam.beamform.plot import show_figure

    hm, _ = show_figure(scene["video"], frame=2, absolute=True, dynamic_range=10)
    try:
        assert hm.colorbar.ax.get_ylabel() == "band level, dB SPL (re 20 µPa)"
        assert hm.colorbar.vmax - hm.colorbar.vmin == pytest.approx(10)
        assert "frame 2 (t = 0.17 s)" in hm.ax.get_title() and "dB SPL" in hm.ax.get_title()
        assert hm.stamp.get_text() == "t = 0.17 s"
        legend = _texts(hm.fig)
        assert not any("stand-in" in t for t in legend) and "no colour: more than 10 dB below the peak" in legend
        assert hm.bg.get_array().shape == (48, 64, 3)            # the video frame is the background
    finally:
        hm.close()


def test_printed_peak_is_the_sources_direction_position_and_level(scene, tmp_path):
    r = CliRunner().invoke(beamform_group, ["show", str(scene["video"]), "-o", str(tmp_path / "p.png")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    x, y, z = SOURCE
    az, el = math.degrees(math.atan2(x, z)), math.degrees(math.atan2(y, math.hypot(x, z)))
    assert f"azimuth {az:+.1f} deg, elevation {el:+.1f} deg" in r.output
    assert f"x {x:+.2f} m, y {y:+.2f} m on the focus plane at 2.00 m" in r.output
    from acam.beamform.plot import show_cube

    info = show_cube(scene["video"], tmp_path / "q.png")
    assert info["peak"] == (12, 33)
    # white noise of RMS 1 Pa at 1 m, 1/r spreading: its share of the bins in 900-6400 Hz, in dB SPL
    freqs = np.arange(BINS) * 12288.0 / (2 * BINS)
    share = np.count_nonzero((freqs >= 900) & (freqs <= 6400)) / BINS
    want = 10 * math.log10(share / (x * x + y * y + z * z) / 20e-6 ** 2)
    assert info["level_db"] == pytest.approx(want, abs=1.0)
    assert f"{info['level_db']:.1f} dB SPL" in r.output


def test_absolute_levels_need_a_recording_in_pascals(scene, tmp_path):
    r = CliRunner().invoke(beamform_group, ["show", str(scene["plain"]), "--absolute", "-o", str(tmp_path / "a.png")])
    assert r.exit_code == 1 and "pascals" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "a.png").exists()


def test_acoustic_video_gif_frames_size_and_timing(scene, tmp_path):
    from PIL import Image

    out = tmp_path / "v.gif"
    r = CliRunner().invoke(beamform_group, ["show", str(scene["video"]), "--animate", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "6 frames of" in r.output and not (tmp_path / "video.cube.png").exists()
    with Image.open(out) as im:
        assert im.n_frames == 6
        w, h = im.size
        assert f"{w} x {h} pixels at 12 frames/s" in r.output
        assert w % 16 == 0 and h % 16 == 0 and w > 400 and h > 300
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
            assert im.size == (w, h)
    assert sum(durations) == pytest.approx(6 / 12 * 1000, abs=10)   # real time: 0.5 s


def test_gif_frames_are_written_as_they_come(tmp_path):
    """Each frame is encoded and written before the next arrives (flat memory)."""
    from PIL import Image

    from acam.beamform.animate import GifStream

    g = GifStream(tmp_path / "s.gif", 40, 30, fps=10)
    sizes = []
    rng = np.random.default_rng(0)
    for _ in range(3):
        g.add(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
        g.file.flush()
        sizes.append((tmp_path / "s.gif").stat().st_size)
    g.close()
    assert sizes[0] > 800 and sizes[0] < sizes[1] < sizes[2]
    with Image.open(tmp_path / "s.gif") as im:
        assert im.n_frames == 3 and im.size == (40, 30)
    with pytest.raises(AcamError, match="does not fit"), GifStream(tmp_path / "t.gif", 40, 30, 10) as bad:
        bad.add(np.zeros((31, 40, 3), np.uint8))


def test_acoustic_video_mp4(scene, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    from acam.beamform.animate import animate_cube

    res = animate_cube(scene["plain"], tmp_path / "v.mp4", absolute=False, fps=6)
    path = str(tmp_path / "v.mp4")
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(path)
    assert frames == res["frames"] == 6 and seconds == pytest.approx(1.0, abs=0.05)
    decoded = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", path, "-f", "rawvideo",
                              "-pix_fmt", "rgb24", "-"], capture_output=True, timeout=60, check=True).stdout
    assert len(decoded) == 6 * res["width"] * res["height"] * 3


def test_animation_needs_a_known_format(scene, tmp_path):
    r = CliRunner().invoke(beamform_group, ["show", str(scene["plain"]), "--animate", str(tmp_path / "v.avi")])
    assert r.exit_code == 1 and ".gif or .mp4" in r.output and not (tmp_path / "v.avi").exists()


def test_cube_dimensions_are_named_with_units(scene):
    with h5py.File(scene["video"], "r") as f:
        cube = f["cube"]
        labels = [d.label for d in cube.dims]
        assert labels == ["frame", "row", "col", "frequency"]
        units = [cube.dims[i][0].attrs["units"] for i in range(4)]
        assert units == ["s", "m", "m", "Hz"]
        np.testing.assert_allclose(cube.dims[0][0][()], np.arange(6) * 1024 / 12288.0)
        np.testing.assert_allclose(cube.dims[3][0][()], f["frequencies"][()])
        assert cube.dims[1][0][0] > 0 > cube.dims[1][0][-1]            # row 0 is the top


def test_cubes_stay_byte_equal(scene, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    beamform_file(scene["raw"], a, RunSettings(bins=16, rows=4, cols=6))
    import time

    time.sleep(1.1)
    beamform_file(scene["raw"], b, RunSettings(bins=16, rows=4, cols=6))
    assert a.read_bytes() == b.read_bytes()


def _psf_results(n_layouts=1):
    from acam.beamform.geometry import sunflower, uniform_grid
    from acam.beamform.report import evaluate

    grid = CameraGrid(12, 16)
    layouts = [sunflower(32, 0.3), uniform_grid(36, 0.3)][:n_layouts]
    return [evaluate(g, grid, [1000.0, 4000.0], band=(500.0, 4000.0), band_step=500.0) for g in layouts]


def test_geometry_figure_labels_and_colour_bars():
    from acam.beamform.report import figure

    results = _psf_results(2)
    fig = figure(results)
    try:
        axes = fig.axes
        layout = [a for a in axes if a.get_xlabel() == "x (cm)"]
        assert len(layout) == 2 and all(a.get_ylabel() == "y (cm)" for a in layout)
        bars = [a for a in axes if a.get_ylabel() == "PSF, dB re main lobe"]
        assert len(bars) == 2                                        # one colour bar per row of maps
        titles = [a.get_title() for a in axes]
        assert not any("inf" in t for t in titles)
        assert any(t.startswith("1 kHz: no sidelobe in view") for t in titles)
        assert any(t.startswith("4 kHz: PSL -") for t in titles)
        assert any(a.get_ylabel() == "elevation (deg)" for a in axes)
        assert any(a.get_xlabel() == "azimuth (deg)" for a in axes)
        psl = next(a for a in axes if a.get_ylabel() == "peak sidelobe level (dB re main lobe)")
        assert psl.get_title().startswith("Peak sidelobe level over 500-4000 Hz")
        assert any("main lobe" in t.get_text() and "fills it" in t.get_text() for t in psl.texts)
        width = next(a for a in axes if a.get_ylabel() == "-3 dB beam width (deg)")
        assert width.get_xlabel() == "frequency (Hz)"
        assert "Point-spread functions of sunflower" in fig._suptitle.get_text()
    finally:
        del fig


def test_geometry_table_writes_a_dash_and_says_why():
    from acam.beamform.report import table

    text = table(_psf_results())
    assert "| - |" in text and "-inf" not in text and "'-': the main lobe fills the view" in text


def test_confusion_matrix_figure_helper():
    from acam.core.figures import matrix_figure

    fig = matrix_figure(np.array([[3, 1], [0, 4]]), ["clap", "knock"], "hearnet (D)", "trained on office; accuracy 0.88")
    try:
        ax = fig.axes[0]
        assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
        assert ax.get_title() == "hearnet (D)\ntrained on office; accuracy 0.88"
        assert fig.axes[1].get_ylabel() == "fraction of the true class (row)"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["clap", "knock"]
    finally:
        del fig


def test_figures_leave_the_callers_backend_and_figures_alone(tmp_path):
    """No library figure switches the caller's pyplot backend or touches its figures: they are drawn
    on their own Agg canvas (acam.core.figures.new_figure)."""
    import sys

    script = f"""
import matplotlib
matplotlib.use("svg")                      # a non-interactive backend other than Agg
import matplotlib.pyplot as plt
mine = plt.figure()
import numpy as np
from acam.core.figures import matrix_figure, save_png
from acam.benchmarks.report import plot_scaling
fig = matrix_figure(np.array([[3, 1], [0, 4]]), ["a", "b"], "t")
save_png(fig, {str(tmp_path / 'm.png')!r})
doc = {{"scaling": {{"cores": 2, "rows": [{{"workers": w, "files_per_s": w, "steady_files_per_s": w,
        "ideal_steady_files_per_s": w, "ideal_on_cores_steady_files_per_s": w}} for w in (1, 2)]}}}}
assert plot_scaling([("x.json", doc)], {str(tmp_path / 's.png')!r})
assert matplotlib.get_backend().lower() == "svg", matplotlib.get_backend()
assert plt.get_fignums() == [mine.number], plt.get_fignums()
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    assert (tmp_path / "m.png").stat().st_size > 0 and (tmp_path / "s.png").stat().st_size > 0
