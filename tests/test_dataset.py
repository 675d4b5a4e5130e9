"""The dataset: MFCC against an independent computation, the tiny build, splits, crops, importers."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import scipy.fft
import scipy.signal
from click.testing import CliRunner

from acam.beamform import ArrayGeometry, Beamformer, CameraGrid, SteeringSpec, default_array
from acam.cli import dataset_group
from acam.core.errors import AcamError
from acam.dataset import mfcc as M
from acam.dataset.build import PRESETS, build, build_sequence, dataset_beamformer, physics_of
from acam.dataset.importers import (encode_feature, encode_sequence_example, import_tfrecord,
                               iter_records, write_records)
from acam.dataset.store import Dataset, assign_splits, read_crop


def independent_mfcc(power: np.ndarray, bin_hz: float) -> np.ndarray:
    """The lab's recipe (the authors' reference notes) from scratch: loops for the filters, scipy's DCT, the lifter."""
    n_bins = power.shape[-1]
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)          # noqa: E731
    inv = lambda m: 700.0 * (np.exp(m / 1127.0) - 1)         # noqa: E731
    edges = [inv(m) for m in np.linspace(0, mel(6400.0), 26)]
    fb = np.zeros((n_bins, 24))
    for j in range(24):
        for k in range(n_bins):
            f = k * bin_hz
            if edges[j] <= f <= edges[j + 1]:
                fb[k, j] = (f - edges[j]) / (edges[j + 1] - edges[j])
            elif edges[j + 1] < f <= edges[j + 2]:
                fb[k, j] = (edges[j + 2] - f) / (edges[j + 2] - edges[j + 1])
    e = np.log(np.maximum(power @ fb, 0.001))
    c = scipy.fft.dct(e, type=2, norm="ortho", axis=-1)[..., 1:13]
    lift = 1 + 11 * np.sin(np.pi * np.arange(1, 13) / 22)
    return c * lift


def test_mfcc_matches_an_independent_computation(rng):
    frames = rng.standard_normal((5, 1024)) * 50
    win = scipy.signal.get_window(("tukey", 0.75), 1024)
    power = np.abs(np.fft.rfft(frames * win, axis=-1))[:, :512] ** 2
    ours = M.mfcc(power)
    ref = independent_mfcc(power, 12800.0 / 1024)
    # measured <= 2e-6 of the largest coefficient (our MFCCs are float32) over three seeds
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert ours.dtype == np.float32 and ours.shape == (5, 12)


def test_cube_mfcc_undoes_the_power_normalisation(rng):
    """One microphone at the array centre: each pixel's spectrum is |rfft(x w)|^2 in lab units."""
    geom = ArrayGeometry(np.zeros((1, 3)))
    spec = SteeringSpec(geom, CameraGrid(2, 3), 12288.0, 512)
    bf = Beamformer(spec, 12.0, "tukey:0.75", device="cpu", precision="double")
    x = rng.standard_normal((3, 1024, 1)) * 20
    cube = bf.process(x)
    bin_hz, factor = M.cube_mfcc_settings({"nfft": 1024, "n_bins": 512, "window": "tukey:0.75",
                                           "frame_len": 1024, "sample_freq": 12288.0})
    ours = M.mfcc(cube, bin_hz, factor)
    win = scipy.signal.get_window(("tukey", 0.75), 1024)
    direct = np.abs(np.fft.rfft(x[:, :, 0] * win, axis=-1))[:, :512] ** 2
    ref = independent_mfcc(direct, bin_hz)
    for r in range(2):
        for c in range(3):
            np.testing.assert_allclose(ours[:, r, c], ref, rtol=0, atol=1e-5 * np.abs(ref).max())  # measured <= 2.1e-6


def test_splits_are_by_recording_and_seeded():
    seqs = [{"name": f"seq{i}", "scenario": 1 + i % 3, "action": (i // 3) % 14} for i in range(378)]
    a, b = assign_splits(seqs), assign_splits(seqs)
    assert a == b
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 294, "val": 42, "test": 42}          # 7 / 1 / 1 in each of the 42 cells


@pytest.fixture
def tiny(tiny_dataset):
    return tiny_dataset


def test_tiny_build_layout_and_counts(tiny):
    d = Dataset(tiny)
    info = d.info()
    assert info["sequences"] == info["built"] == 42
    assert info["per_scenario"] == {"1": 14, "2": 14, "3": 14}
    assert set(info["per_action"].values()) == {3}
    assert sum(info["per_split"].values()) == 42
    with h5py.File(d.path(d.sequences[0])) as f:
        assert f["mfcc"].shape == (24, 36, 48, 12) and f["mfcc"].dtype == np.float32
        assert f["mono"].shape == (24 * 1024,)
        assert f["video"].shape == (24, 48, 64, 3) and f["video"].dtype == np.uint8
        assert f["video"].compression == "gzip"
        assert f["source_track"].shape == (24, 3)
        assert np.all(np.isfinite(f["mfcc"][()]))
        assert 2.0 <= f["source_track"][0, 2] <= 4.0


def test_tiny_source_is_where_the_cube_says(tiny):
    """The MFCC cube's first coefficient is not enough to localise; the beamformed energy is: build
    one sequence with full cubes and check its band energy peaks near the source track."""
    d = Dataset(tiny)
    ok = 0
    for s in d.select(scenarios=[1])[:6]:
        with h5py.File(d.path(s)) as f:
            track = f["source_track"][()]
        folder = os.path.join(os.path.dirname(d.folder), "cubes_" + s["name"])
        bf = dataset_beamformer(d.manifest, "cpu")           # dead microphones dropped (physics 2)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "x.h5")
        build_sequence(path, s, PRESETS["tiny"], bf, 0, "float32", False, physics_of(d.manifest))
        with h5py.File(path) as f:
            cube = f["cube"][()]
            np.testing.assert_array_equal(f["mfcc"][()], h5py.File(d.path(s))["mfcc"][()])  # deterministic
        e = cube[..., 75:534].sum(-1).mean(0)
        r, c = np.unravel_index(np.argmax(e), e.shape)
        want = CameraGrid().pixel_of(track.mean(0))
        ok += abs(r - want[0]) <= 2 and abs(c - want[1]) <= 2
    assert ok >= 5


def test_resume_skips_finished_sequences(tiny, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    victim = copy / Dataset(copy).sequences[5]["file"]
    other = copy / Dataset(copy).sequences[6]["file"]
    before = other.stat().st_mtime_ns
    victim.unlink()
    build(copy, "tiny", seed=0, device="cpu")
    assert victim.exists() and other.stat().st_mtime_ns == before
    with h5py.File(victim) as a, h5py.File(tiny / Dataset(tiny).sequences[5]["file"]) as b:
        np.testing.assert_array_equal(a["mfcc"][()], b["mfcc"][()])
        np.testing.assert_array_equal(a["video"][()], b["video"][()])
    with pytest.raises(AcamError, match="different dataset"):
        build(copy, "tiny", seed=1, device="cpu")


def test_crops_are_fixed_and_read_lazily(tiny):
    d = Dataset(tiny)
    a = d.crops("train", 1.0, 3, seed=7)
    b = d.crops("train", 1.0, 3, seed=7)
    assert a == b and len(a) == 3 * len(d.select("train"))
    assert {c.sequence for c in a} == {s["name"] for s in d.select("train")}
    got = read_crop(a[0], ("mfcc", "mono", "video", "label", "source_track"))
    assert got["mfcc"].shape == (12, 36, 48, 12) and got["mono"].shape == (12 * 1024,)
    assert got["video"].shape == (12, 48, 64, 3) and got["label"] == a[0].action
    long = d.crops("test", 5.0, 1, seed=0)[0]          # longer than the 2 s sequence: cyclic
    got = read_crop(long, ("mfcc", "mono"))
    assert got["mfcc"].shape[0] == 60 and got["mono"].shape == (60 * 1024,)
    with h5py.File(long.file) as f:
        np.testing.assert_array_equal(got["mfcc"][24:48], f["mfcc"][()])


def test_dataset_cli(tiny, tmp_path):
    r = CliRunner().invoke(dataset_group, ["info", str(tiny)])
    assert r.exit_code == 0 and "42 of 42 sequences" in r.output and "clapping 3" in r.output
    r = CliRunner().invoke(dataset_group, ["info", str(tmp_path)])
    assert r.exit_code != 0 and "not a dataset folder" in r.output


# ------------------------------------------------------------------------------------ importers
def test_protobuf_encoding_follows_the_wire_format():
    # Feature{int64_list{value: [150]}}: field 3 (0x1a), Int64List field 1 packed (0x0a), varint 150
    assert encode_feature("int64", [150]) == b"\x1a\x04\x0a\x02\x96\x01"
    assert encode_feature("bytes", [b"ab"]) == b"\x0a\x04\x0a\x02ab"
    import google_crc32c

    assert google_crc32c.value(b"123456789") == 0xE3069283   # the CRC-32C check value


def _authors_record(action, location, subject, rng, n=12):
    ctx = {"action": ("int64", [action]), "location": ("int64", [location]), "subject": ("int64", [subject]),
           "audio_image/height": ("int64", [36]), "audio_image/width": ("int64", [48]),
           "audio_image/depth": ("int64", [12]), "audio_data/mics": ("int64", [1]),
           "audio_data/samples": ("int64", [1024]), "video/height": ("int64", [480]),
           "video/width": ("int64", [640]), "video/depth": ("int64", [3])}
    img = rng.standard_normal((n, 36, 48, 12)).astype("<f4")
    aud = rng.integers(-2 ** 31, 2 ** 31 - 1, (n, 1, 1024)).astype("<i4")
    vid = rng.integers(0, 256, (n, 480, 640, 3)).astype(np.uint8)
    lists = {"audio/image": [("bytes", [x.tobytes()]) for x in img],
             "audio/data": [("bytes", [x.tobytes()]) for x in aud],
             "video/image": [("bytes", [x.tobytes()]) for x in vid]}
    return encode_sequence_example(ctx, lists), img, aud, vid


def test_import_tfrecord(tmp_path, rng):
    src = tmp_path / "records"
    (src / "seqA").mkdir(parents=True)
    (src / "seqB").mkdir()
    rec1, img1, aud1, vid1 = _authors_record(3, 1, 4, rng)
    rec2, img2, aud2, vid2 = _authors_record(3, 1, 4, rng)
    rec3, img3, _, _ = _authors_record(10, 2, 0, rng, n=12)
    write_records(src / "seqA" / "data_1.tfrecord", [rec1])
    write_records(src / "seqA" / "data_2.tfrecord", [rec2])
    write_records(src / "seqB" / "data_1.tfrecord", [rec3], compress=False)
    out = tmp_path / "real"
    m = import_tfrecord(src, out)
    assert len(m["sequences"]) == 2
    d = Dataset(out)
    s = [x for x in d.sequences if x["action"] == 3][0]
    assert s["scenario"] == 2 and s["subject"] == 4 and s["n_frames"] == 24
    with h5py.File(d.path(s)) as f:
        np.testing.assert_array_equal(f["mfcc"][()], np.concatenate([img1, img2]))
        np.testing.assert_array_equal(f["mono"][:1024], aud1[0, 0].astype(np.float32))
        np.testing.assert_array_equal(f["video"][0], vid1[0][..., ::-1])      # BGR -> RGB
    crop = d.crops(None, 1.0, 1, seed=0)[0]
    assert read_crop(crop, ("mfcc", "video"))["video"].shape == (12, 480, 640, 3)


def test_corrupt_tfrecord_names_file_and_record(tmp_path, rng):
    rec, *_ = _authors_record(1, 0, 0, rng, n=2)
    path = tmp_path / "r" / "bad.tfrecord"
    path.parent.mkdir()
    write_records(path, [rec, rec], compress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 + 100] ^= 0xFF                 # inside the second record's payload
    path.write_bytes(bytes(data))
    with pytest.raises(AcamError, match=r"bad.tfrecord: record 1: corrupt data"):
        list(iter_records(path))
    r = CliRunner().invoke(dataset_group, ["import-tfrecord", str(path.parent), "-o", str(tmp_path / "o")])
    assert r.exit_code != 0 and "record 1" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_import_dc(tmp_path, rng):
    src = tmp_path / "dc"
    src.mkdir()
    frames = rng.integers(-1000, 1000, (3, 128, 1024)).astype("<i4")
    for i, fr in enumerate(frames):
        fr.flatten(order="F").tofile(src / f"frame_{i + 1}.dc")   # 1, 2, 3: natural order
    out = tmp_path / "raw.h5"
    r = CliRunner().invoke(dataset_group, ["import-dc", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    with h5py.File(out) as f:
        td = f["time_data"][()]
        assert td.shape == (3 * 1024, 128) and td.dtype == np.int32
        assert f["time_data"].attrs["sample_freq"] == 12288.0
        expected = np.concatenate([fr.T for fr in frames])
        expected[:, [79, 105]] = 0
        np.testing.assert_array_equal(td, expected)
        assert f["bad_mics"][()].sum() == 2 and f["bad_mics"][79] and f["bad_mics"][105]
    (src / "frame_4.dc").write_bytes(b"\0" * 100)
    r = CliRunner().invoke(dataset_group, ["import-dc", str(src), "-o", str(tmp_path / "raw2.h5")])
    assert r.exit_code != 0 and "frame_4.dc: 100 bytes" in r.output
    assert not (tmp_path / "raw2.h5").exists()


def test_mfcc_cli(tmp_path, rng):
    from acam.beamform import write_raw
    from acam.cli import beamform_group

    raw, cube, out = tmp_path / "r.h5", tmp_path / "c.h5", tmp_path / "m.h5"
    write_raw(raw, rng.standard_normal((2048, 128)).astype(np.float32), 12288.0, default_array().positions)
    # the CPU pinned: compared with NumPy at 1e-6 below (the GPU's own parity is in tests/test_gpu.py)
    assert CliRunner().invoke(beamform_group, ["run", str(raw), "-o", str(cube), "--rows", "6", "--cols", "8",
                                               "--window", "tukey:0.75", "--device", "cpu"]).exit_code == 0
    r = CliRunner().invoke(dataset_group, ["mfcc", str(cube), "-o", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    with h5py.File(out) as f, h5py.File(cube) as c:
        assert f["mfcc"].shape == (2, 6, 8, 12)
        bin_hz, factor = M.cube_mfcc_settings(dict(c.attrs))
        np.testing.assert_allclose(f["mfcc"][()], M.mfcc(c["cube"][()], bin_hz, factor), rtol=1e-6)
