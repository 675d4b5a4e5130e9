"""Array geometry files, the camera grid, and the two HDF5 formats."""

from __future__ import annotations

import numpy as np
import pytest

from acam.beamform import AcamError, ArrayGeometry, CameraGrid, FormatError, RawRecording, default_array, write_raw
from acam.beamform.filter_and_sum import frame_layout, frame_starts

ACOULAR_XML = """<?xml version="1.0" encoding="utf-8"?>
<MicArray name="array_4">
    <pos Name="Point 1 " x="0.1" y="-0.2" z="0"/>
    <pos Name="Point 2 " x="-0.1" y="0.2" z="0"/>
    <pos Name="Point 3 " x="0.3" y="0.0" z="0.01"/>
    <pos Name="Point 4 " x="0.0" y="0.05" z="0"/>
</MicArray>
"""


def test_reads_acoular_xml(tmp_path):
    path = tmp_path / "array_4.xml"
    path.write_text(ACOULAR_XML)
    g = ArrayGeometry.from_file(path)
    assert g.n_mics == 4 and g.name == "array_4"
    np.testing.assert_allclose(g.positions[2], [0.3, 0.0, 0.01])


@pytest.mark.parametrize("ext", ["xml", "csv", "npy"])
def test_geometry_round_trip(tmp_path, ext):
    g = default_array()
    g.save(tmp_path / f"a.{ext}")
    h = ArrayGeometry.from_file(tmp_path / f"a.{ext}")
    np.testing.assert_allclose(h.positions, g.positions, atol=1e-6)


def test_default_array_is_the_documented_layout():
    g = default_array()
    assert g.n_mics == 128
    assert np.abs(g.positions[:, :2]).max() <= 0.225 and np.all(g.positions[:, 2] == 0)
    assert g.min_spacing >= 0.0249
    assert np.hypot(g.positions[:, 0], g.positions[:, 1]).min() >= 0.035


def test_bad_geometry_files(tmp_path):
    with pytest.raises(AcamError, match="does not exist"):
        ArrayGeometry.from_file(tmp_path / "none.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<MicArray><pos x='a'/></MicArray>")
    with pytest.raises(FormatError):
        ArrayGeometry.from_file(bad)
    with pytest.raises(FormatError, match="shape"):
        ArrayGeometry(np.zeros((4, 4)))
    with pytest.raises(FormatError, match="NaN"):
        ArrayGeometry(np.array([[0, 0, np.nan]]))


def test_grid_orientation_and_projection():
    g = CameraGrid()
    look = g.look_points()
    assert look.shape == (36, 48, 3)
    assert look[0, 0, 0] < 0 < look[0, -1, 0]          # column 0 is the left
    assert look[0, 0, 1] > 0 > look[-1, 0, 1]          # row 0 is the top
    np.testing.assert_allclose(look[..., 2], 2.0)
    for r, c in [(0, 0), (10, 30), (35, 47)]:
        assert g.pixel_of(look[r, c]) == (r, c)
        assert g.pixel_of(look[r, c] * 1.7) == (r, c)  # same ray, farther away
    # the corners of the field of view
    assert np.isclose(np.degrees(np.arctan2(look[0, -1, 0] + (look[0, -1, 0] - look[0, -2, 0]) / 2, 2.0)), 30.0)
    with pytest.raises(AcamError):
        CameraGrid(hfov=0)


def test_frame_layout_and_starts():
    assert frame_layout(12288.0, 12.0, 1024) == (1024, 1024, 1)
    assert frame_layout(12288.0, 12.0, 128) == (1024, 128, 8)
    assert frame_layout(12288.0, 12.0, 2048) == (1024, 1024, 1)
    np.testing.assert_array_equal(frame_starts(12288 * 2 + 5, 12288.0, 12.0), np.arange(24) * 1024)
    s = frame_starts(16000, 16000.0, 12.0)              # 1333.33 samples per frame
    assert len(s) == 12 and s[1] == 1333 and s[2] == 2667


def test_raw_round_trip_and_int_data(tmp_path, rng):
    data = rng.integers(-2 ** 20, 2 ** 20, (4096, 8)).astype(np.int32)
    pos = default_array().positions[:8]
    write_raw(tmp_path / "r.h5", data, 12288.0, pos, 12.0, bad_mics=np.eye(8, dtype=bool)[3])
    with RawRecording.open(tmp_path / "r.h5") as raw:
        assert raw.n_channels == 8 and raw.sample_freq == 12288.0 and raw.frame_rate == 12.0
        assert raw.bad_mics.tolist() == [False] * 3 + [True] + [False] * 4
        frames = raw.read_frames(np.array([1024, 2048]), 1024)
        np.testing.assert_array_equal(frames[1], data[2048:3072].astype(np.float32))


def test_write_raw_rejects_mismatch(tmp_path):
    with pytest.raises(AcamError, match="channels do not fit"):
        write_raw(tmp_path / "r.h5", np.zeros((10, 4)), 1000.0, np.zeros((3, 3)))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["boxcar", "hann", "hamming", "blackman", "tukey", "tukey:0.3", "tukey:1"])
@pytest.mark.parametrize("length", [7, 128, 1000])
def test_windows_match_scipy(name, length):
    import scipy.signal

    from acam.beamform.filter_and_sum import parse_window

    base, _, arg = name.partition(":")
    ref = scipy.signal.get_window((base, float(arg or 0.75)) if base == "tukey" else base, length)
    np.testing.assert_allclose(parse_window(name, length), ref, atol=1e-12)
