"""Every command through click's test runner, and bad input: one line, non-zero exit, no output."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acam.beamform import Cube, default_array, write_raw
from acam.cli import acam, beamform_group, learn_group


def invoke(group, args):
    return CliRunner().invoke(group, args, catch_exceptions=False)


@pytest.fixture
def small_raw(tmp_path, rng):
    """A 0.5 s, 16-channel float32 recording at 12 288 Hz."""
    path = tmp_path / "raw.h5"
    write_raw(path, rng.standard_normal((6144, 16)).astype(np.float32), 12288.0,
              default_array().positions[:16], 12.0)
    return path


def leftovers(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".part")]


def test_simulate_run_show(tmp_path):
    raw, cube, png = tmp_path / "raw.h5", tmp_path / "cube.h5", tmp_path / "overlay.png"
    r = invoke(beamform_group, ["simulate", "-o", str(raw), "--duration", "0.5",
                                "--source", "noise@0.5,0.3,2.5"])
    assert r.exit_code == 0, r.output
    with h5py.File(raw) as f:
        assert f["time_data"].shape == (6144, 128)
        assert f["time_data"].attrs["sample_freq"] == 12288.0
        np.testing.assert_allclose(f["source_positions"][()], [[0.5, 0.3, 2.5]])
    r = invoke(beamform_group, ["run", str(raw), "--bins", "64", "-o", str(cube), "--no-progress"])
    assert r.exit_code == 0, r.output
    with Cube.open(cube) as c:
        assert c.cube.shape == (6, 36, 48, 64)
        assert c.cube.dtype == np.float32
        np.testing.assert_allclose(c.frequencies, np.arange(64) * 96.0)
        assert c.look_points.shape == (36, 48, 3)
        for key in ("sample_freq", "frame_rate", "nfft", "focus", "speed_of_sound", "hfov", "vfov",
                    "window", "weights", "source_file", "version", "settings_digest"):
            assert key in c.attrs
        assert c.attrs["nfft"] == 128 and c.attrs["segments_per_frame"] == 8
        energy = c.band_energy((900, 6400)).mean(0)
    from acam.beamform import CameraGrid

    want = CameraGrid().pixel_of((0.5, 0.3, 2.5))
    got = np.unravel_index(np.argmax(energy), energy.shape)
    assert abs(got[0] - want[0]) <= 1 and abs(got[1] - want[1]) <= 1
    r = invoke(beamform_group, ["show", str(cube), "-o", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_acam_root_group_reaches_beamform(small_raw, tmp_path):
    out = tmp_path / "c.h5"
    r = invoke(acam, ["beamform", "run", str(small_raw), "--bins", "16", "--rows", "4", "--cols", "6",
                      "-o", str(out), "--dtype", "float16"])
    assert r.exit_code == 0, r.output
    with Cube.open(out) as c:
        assert c.cube.dtype == np.float16 and c.cube.shape == (6, 4, 6, 16)


def test_float16_cube_matches_float32(small_raw, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for path, dt in ((a, "float32"), (b, "float16")):
        assert invoke(beamform_group, ["run", str(small_raw), "--bins", "32", "-o", str(path),
                                       "--dtype", dt]).exit_code == 0
    with Cube.open(a) as ca, Cube.open(b) as cb:
        x, y = ca.cube[()], cb.cube[()].astype(np.float32)
    np.testing.assert_allclose(y, x, rtol=2e-3, atol=1e-3 * x.max())


def test_learn_lists_its_commands():
    r = CliRunner().invoke(learn_group, ["--help"])
    assert r.exit_code == 0
    for cmd in ("train", "distill", "evaluate", "transfer", "reproduce"):
        assert cmd in r.output


def test_help_texts():
    for group, args in ((acam, []), (beamform_group, []), (beamform_group, ["run"]),
                        (beamform_group, ["simulate"]), (beamform_group, ["show"]), (acam, ["dataset"]),
                        (acam, ["bench"]), (acam, ["learn", "train"]), (beamform_group, ["geometry", "make"])):
        r = invoke(group, args + ["--help"])
        assert r.exit_code == 0 and "Usage" in r.output


def _corrupt(path, how):
    """Rewrite a raw file with one defect."""
    with h5py.File(path, "r+") as f:
        if how == "no_time_data":
            del f["time_data"]
        elif how == "wrong_shape":
            data = f["time_data"][()]
            del f["time_data"]
            f.create_dataset("time_data", data=data.reshape(-1))
            f["time_data"].attrs["sample_freq"] = 12288.0
        elif how == "channel_mismatch":
            del f["mic_positions"]
            f.create_dataset("mic_positions", data=default_array().positions[:15])
        elif how == "nan":
            f["time_data"][3000, 2] = np.nan
        elif how == "no_sample_rate":
            del f["time_data"].attrs["sample_freq"]
            del f.attrs["sample_freq"]
        elif how == "no_positions":
            del f["mic_positions"]


@pytest.mark.parametrize("how, words", [
    ("no_time_data", "time_data"),
    ("wrong_shape", "shape"),
    ("channel_mismatch", "16 channels do not fit 15 microphones"),
    ("nan", "NaN"),
    ("no_sample_rate", "sample rate missing"),
    ("no_positions", "mic_positions"),
])
def test_bad_recording_fails_cleanly(small_raw, tmp_path, how, words):
    _corrupt(small_raw, how)
    before = small_raw.read_bytes()
    out = tmp_path / "cube.h5"
    r = CliRunner().invoke(beamform_group, ["run", str(small_raw), "--bins", "16", "-o", str(out)])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], r.output
    assert "Traceback" not in r.output
    assert not out.exists() and not leftovers(tmp_path)
    assert small_raw.read_bytes() == before            # the input is untouched


@pytest.mark.parametrize("args, words", [
    (["--bins", "0"], "--bins 0"),
    (["--focus", "-1"], "focus"),
    (["--window", "kaiser"], "window"),
    (["--hfov", "200"], "hfov"),
    (["--block-frames", "0"], "block_frames"),
])
def test_impossible_options_fail_cleanly(small_raw, tmp_path, args, words):
    out = tmp_path / "cube.h5"
    r = CliRunner().invoke(beamform_group, ["run", str(small_raw), "-o", str(out)] + args)
    assert r.exit_code != 0
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], r.output
    assert not out.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("target", ["missing_dir/cube.h5", "/proc/acam-cube.h5"])
def test_unwritable_output_fails_cleanly(small_raw, tmp_path, target):
    out = target if target.startswith("/") else str(tmp_path / target)
    r = CliRunner().invoke(beamform_group, ["run", str(small_raw), "--bins", "16", "-o", out])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert not leftovers(tmp_path)


def test_output_folder_takes_the_recordings_name(small_raw, tmp_path):
    folder = tmp_path / "cubes"
    folder.mkdir()
    r = CliRunner().invoke(beamform_group, ["run", str(small_raw), "--bins", "16", "-o", str(folder)])
    assert r.exit_code == 0, r.output
    with h5py.File(folder / "raw.cube.h5") as f:
        assert f["cube"].shape == (6, 36, 48, 16)
    assert os.listdir(folder) == ["raw.cube.h5"]


def test_output_never_overwrites_input(small_raw):
    before = small_raw.read_bytes()
    r = CliRunner().invoke(beamform_group, ["run", str(small_raw), "--bins", "16", "-o", str(small_raw)])
    assert r.exit_code != 0 and "also an input" in r.output
    assert small_raw.read_bytes() == before


def test_missing_and_non_hdf5_inputs(tmp_path):
    r = CliRunner().invoke(beamform_group, ["run", str(tmp_path / "nope.h5")])
    assert r.exit_code != 0 and "does not exist" in r.output
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    r = CliRunner().invoke(beamform_group, ["run", str(junk)])
    assert r.exit_code != 0 and "not an HDF5 file" in r.output
    r = CliRunner().invoke(beamform_group, ["show", str(junk)])
    assert r.exit_code != 0 and "not an HDF5 file" in r.output


def test_bad_source_spec_and_cube_file(tmp_path, small_raw):
    r = CliRunner().invoke(beamform_group, ["simulate", "-o", str(tmp_path / "x.h5"), "--source", "noise@1,2"])
    assert r.exit_code != 0 and "three coordinates" in r.output
    assert not (tmp_path / "x.h5").exists()
    r = CliRunner().invoke(beamform_group, ["show", str(small_raw), "-o", str(tmp_path / "p.png")])
    assert r.exit_code != 0 and "acoustic cube" in r.output


def test_demo_writes_recording_cube_and_picture(tmp_path):
    """The README's first command."""
    out = tmp_path / "demo"
    r = invoke(beamform_group, ["demo", "-o", str(out)])
    assert r.exit_code == 0, r.output
    with h5py.File(out / "cube.h5") as f:
        assert f["cube"].shape[1:] == (36, 48, 512)
    assert (out / "overlay.png").read_bytes()[:4] == b"\x89PNG"
    assert "The picture is" in r.output


def test_option_types_parse_once_and_name_the_flag():
    import click

    from acam.cli import BAND, INTS, NAMES, XYZ, ListOf, Numbers

    assert INTS.convert("1, 2,4", None, None) == (1, 2, 4)
    assert NAMES.convert("", None, None) == () and NAMES.convert("a,,b", None, None) == ("a", "b")
    assert BAND.convert("500:6000", None, None) == (500.0, 6000.0) == BAND.convert("500,6000", None, None)
    assert XYZ.convert("1,2,3", None, None) == (1.0, 2.0, 3.0)
    for kind, text in ((INTS, "1,x"), (XYZ, "1,2"), (Numbers(2, "LO:HI", ordered=True), "6000:500"),
                       (ListOf(int, lo=0), "-1")):
        with pytest.raises(click.BadParameter):
            kind.convert(text, None, None)


def test_library_parameters_become_the_commands_flags():
    """The library names its parameters (lam, retries); the command line its flags."""
    from acam.core.errors import OutputExists, ParameterError

    assert str(ParameterError("lam", 2.0, "must lie in [0, 1]")) == "lam=2.0 must lie in [0, 1]"
    assert "overwrite=True" in str(OutputExists("c.h5", "exists"))
    r = CliRunner().invoke(beamform_group, ["run", "x.h5", "--retries", "-1"])
    assert r.exit_code == 1 and "--retries -1 must be at least 0" in r.output


def test_sources_and_windows_come_from_registries():
    from acam.beamform.filter_and_sum import WINDOWS, parse_window
    from acam.beamform.simulate import KINDS, SOURCES, SourceSpec

    assert KINDS == tuple(SOURCES) == ("noise", "tone", "chirp", "burst", "wav")
    assert SourceSpec.parse("tone:2000@0,0,2").freq == 2000.0
    assert (SourceSpec.parse("chirp:500-900@0,0,2").freq2, SourceSpec.parse("wav:a.wav@0,0,2").path) == (900.0, "a.wav")
    rng = np.random.default_rng(0)
    for kind in ("noise", "tone", "chirp", "burst"):
        x = SourceSpec((0, 0, 2), kind).signal(12288, 12288.0, rng)
        assert x.shape == (12288,) and 0.5 < np.sqrt(np.mean(x ** 2)) < 1.5, kind    # about unit RMS
    assert set(WINDOWS) == {"boxcar", "hann", "hamming", "blackman", "tukey"}
    assert np.allclose(parse_window("hann", 8), 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8))
