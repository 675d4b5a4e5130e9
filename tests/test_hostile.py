"""Hostile input and faults, class by class (issue 12): crafted files, special files, full disks,
killed writers, impossible options.  Every refusal is one line naming the problem, a non-zero exit,
no traceback, inputs intact and no partial output."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import resource
import struct
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acam.beamform import default_array, write_raw
from acam.cli import acam
from acam.core.errors import AcamError
from fakes import fake_dataset, fake_run

FS = 12288.0


# ------------------------------------------------------------------------------------------ helpers
def run(*args):
    return CliRunner().invoke(acam, [str(a) for a in args], catch_exceptions=True)


def refused(r, *words):
    """One ``Error:`` line naming ``words``, a non-zero exit, no traceback."""
    assert r.exit_code not in (0, None), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.output
    for w in words:
        assert str(w) in lines[0], (w, lines[0])
    return lines[0]


def ok(r):
    assert r.exit_code == 0, r.output
    return r.output


def digest(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def parts(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".part")]


def raw_file(path, n=6144, ch=16, **attrs):
    rng = np.random.default_rng(0)
    write_raw(path, rng.standard_normal((n, ch)).astype(np.float32), FS, default_array().positions[:ch], 12.0,
              attrs=attrs or None)
    return path


FAST = ["--bins", "8", "--rows", "4", "--cols", "4", "--no-progress", "--device", "cpu"]


@pytest.fixture
def raw(tmp_path):
    return raw_file(tmp_path / "raw.h5")


@pytest.fixture
def cube(tmp_path, raw):
    out = tmp_path / "cube.h5"
    ok(run("beamform", "run", raw, "-o", out, *FAST))
    return out


@contextlib.contextmanager
def file_size_limit(nbytes):
    """``ulimit -f`` for this process (Python ignores SIGXFSZ: writes past it fail with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


# ====================================================================== 1. checkpoints run no code
torch = pytest.importorskip("torch")


class Payload:
    """Pickles into a call of ``os.system``: what a poisoned checkpoint would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fake_dataset(tmp_path_factory.mktemp("fake"))


def test_checkpoint_payload_never_runs(tmp_path, data):
    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    marker = tmp_path / "pwned"
    torch.save({"model": Payload(marker)}, run_dir / "best.pt")
    msg = refused(run("learn", "evaluate", run_dir, "--device", "cpu"), "best.pt", "refused unread")
    assert not marker.exists(), msg
    refused(run("learn", "distill", "--teacher", run_dir, "--student", "hearnet", "-o", tmp_path / "d",
                "--data", data, "--device", "cpu"), "best.pt")
    assert not marker.exists()


def test_resume_payload_never_runs(tmp_path, data):
    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    marker = tmp_path / "pwned"
    torch.save({"optimizer": Payload(marker)}, run_dir / "last.pt")
    refused(run("learn", "train", "--model", "dualcamnet", "--data", data, "-o", run_dir, "--epochs", "1",
                "--crops", "1", "--device", "cpu", "--no-progress"), "last.pt", "refused unread")
    assert not marker.exists()


def test_init_payload_is_one_line(tmp_path, data):
    marker = tmp_path / "pwned"
    torch.save({"model": Payload(marker)}, tmp_path / "init.pt")
    refused(run("learn", "train", "--model", "dualcamnet", "--init", tmp_path / "init.pt", "--data", data,
                "-o", tmp_path / "r", "--epochs", "1", "--device", "cpu", "--no-progress"), "init.pt")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"junk" * 100, "truncated", "list", "keys"])
def test_bad_checkpoints_are_one_line(tmp_path, data, content):
    run_dir = fake_run(tmp_path / "run", data)
    best = run_dir / "best.pt"
    if content == "truncated":
        blob = digest(best)
        best.write_bytes(blob[: len(blob) // 2])
    elif content == "list":
        torch.save([1, 2, 3], best)
    elif content == "keys":
        torch.save({"model": {}, "epoch": 1}, best)
    else:
        best.write_bytes(content)
    refused(run("learn", "evaluate", run_dir, "--device", "cpu"), "best.pt")


def test_checkpoint_holds_plain_data_only(tmp_path, data):
    from acam.learn.checkpoint import load_run

    run_dir = fake_run(tmp_path / "run", data)
    obj = torch.load(run_dir / "best.pt", weights_only=True)     # loads: nothing but plain data inside
    assert isinstance(obj["model_config"], dict) and isinstance(obj["train_config"], dict)
    model, ck = load_run(str(run_dir))
    assert model.modality == "mfcc" and ck["model_config"]["name"] == "dualcamnet"


def test_checkpoint_of_another_class_count_is_refused_for_distillation(tmp_path, data):
    teacher = fake_run(tmp_path / "t", data, n_classes=10)
    refused(run("learn", "distill", "--teacher", teacher, "--student", "hearnet", "--data", data, "-o",
                tmp_path / "s", "--epochs", "1", "--crops", "1", "--device", "cpu", "--no-progress"),
            "10", "14", "class count")


def test_weights_of_another_shape_are_one_line(tmp_path, data):
    run_dir = fake_run(tmp_path / "run", data)
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    ck["model_config"]["n_classes"] = 9                 # config and weights disagree
    torch.save(ck, run_dir / "best.pt")
    refused(run("learn", "evaluate", run_dir, "--device", "cpu"), "do not fit", "9 classes")


def test_dataset_of_another_mfcc_grid_is_refused(tmp_path, data):
    other = fake_dataset(tmp_path / "small-grid", grid=(18, 24, 12))
    run_dir = fake_run(tmp_path / "run", data)
    refused(run("learn", "evaluate", run_dir, "--data", other, "--device", "cpu"), "18x24x12", "36x48x12")


def test_soft_label_cache_keyed_by_teacher_and_read_only_teacher(tmp_path, data, monkeypatch, capsys):
    from acam.dataset.store import Dataset
    from acam.learn import checkpoint
    from acam.learn.train import teacher_soft_logits

    teacher = fake_run(tmp_path / "t", data)
    ds = Dataset(data)
    crops = ds.crops("train", 1.0, 1)
    a = teacher_soft_logits(str(teacher), crops, ds, torch.device("cpu"))
    fake_run(teacher, data)                              # "retrained": other weights, same crops
    torch.manual_seed(5)
    ck = torch.load(teacher / "best.pt", weights_only=True)
    ck["model"] = {k: v + 0.01 for k, v in ck["model"].items()}
    torch.save(ck, teacher / "best.pt")
    b = teacher_soft_logits(str(teacher), crops, ds, torch.device("cpu"))
    assert not torch.allclose(a, b)                      # not the stale labels of the old teacher
    assert len([n for n in os.listdir(teacher) if n.startswith("soft_")]) == 2

    def no_write(*a, **k):
        raise AcamError(f"cannot write to {str(teacher)!r}: Read-only file system")

    monkeypatch.setattr(checkpoint, "atomic_output", no_write)
    ck["model"] = {k: v - 0.02 for k, v in ck["model"].items()}
    torch.save(ck, teacher / "best.pt")
    c = teacher_soft_logits(str(teacher), crops, ds, torch.device("cpu"))
    assert c.shape == a.shape and "computed in memory" in capsys.readouterr().err


def test_poisoned_soft_label_cache_is_ignored_not_run(tmp_path, data, capsys):
    from acam.dataset.store import Dataset
    from acam.learn.train import teacher_soft_logits

    teacher = fake_run(tmp_path / "t", data)
    ds = Dataset(data)
    crops = ds.crops("train", 1.0, 1)
    teacher_soft_logits(str(teacher), crops, ds, torch.device("cpu"))
    (cache,) = [teacher / n for n in os.listdir(teacher) if n.startswith("soft_")]
    marker = tmp_path / "pwned"
    torch.save(Payload(marker), cache)
    t = teacher_soft_logits(str(teacher), crops, ds, torch.device("cpu"))
    assert t.shape == (len(crops), 14) and not marker.exists()
    assert "refused unread" in capsys.readouterr().err


def test_full_disk_leaves_no_checkpoint_part(tmp_path):
    from acam.learn.checkpoint import save_checkpoint

    path = tmp_path / "last.pt"
    with file_size_limit(10_000), pytest.raises(AcamError, match="last.pt.*(file too large|write failed)"):
        save_checkpoint({"model": {"w": torch.zeros(100_000)}}, str(path))
    assert not path.exists() and parts(tmp_path) == []


@pytest.mark.parametrize("args, words", [
    (["--epochs", "0"], ["epochs=0", "at least 1"]),
    (["--crops", "0"], ["crops_per_sequence=0"]),
    (["--batch-size", "0"], ["batch_size=0"]),
    (["--lr", "nan"], ["lr=nan"]),
    (["--lr", "-1"], ["lr=-1"]),
    (["--lr", "0"], ["lr=0"]),
])
def test_train_options_are_checked_by_the_library(tmp_path, data, args, words):
    refused(run("learn", "train", "--model", "dualcamnet", "--data", data, "-o", tmp_path / "r",
                "--device", "cpu", "--no-progress", *args), *words)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, words", [
    (["--seeds", "a"], ["seeds", "'a'"]),
    (["--teachers", "bogus"], ["bogus"]),
    (["--students", "dualcamnet"], ["dualcamnet", "students are"]),
    (["--epochs", "0"], ["epochs=0"]),
])
def test_reproduce_options(tmp_path, data, args, words):
    refused(run("learn", "reproduce", "--data", data, "-o", tmp_path / "r", "--device", "cpu", *args), *words)


def test_transfer_seconds_and_odd_k(tmp_path, data):
    from acam.learn.transfer import knn_k

    run_dir = fake_run(tmp_path / "run", data, model="hearnet")
    refused(run("learn", "transfer", run_dir, "--data", tmp_path, "--seconds", "0"), "seconds=0")
    assert [knn_k(k, n) for k, n in [(7, 100), (8, 100), (7, 6), (9, 4), (7, 1), (7, 0)]] == [7, 7, 5, 3, 1, 1]


# ====================================================================== 2. no input is ever replaced
def test_run_output_equal_to_array_file(tmp_path, raw):
    arr = tmp_path / "arr.h5"
    raw_file(arr)
    before = digest(arr)
    refused(run("beamform", "run", raw, "--array", arr, "-o", arr, *FAST), "also an input", "arr.h5")
    assert digest(arr) == before


def test_run_output_equal_to_external_link_target(tmp_path):
    data = tmp_path / "data.h5"
    raw_file(data)
    holder = tmp_path / "holder.h5"
    with h5py.File(holder, "w") as f:
        f["time_data"] = h5py.ExternalLink("data.h5", "/time_data")
        f["mic_positions"] = h5py.ExternalLink("data.h5", "/mic_positions")
        f.attrs["sample_freq"] = FS
    before = digest(data)
    refused(run("beamform", "run", holder, "-o", data, *FAST), "also an input", "data.h5")
    assert digest(data) == before
    ok(run("beamform", "run", holder, "-o", tmp_path / "c.h5", *FAST))   # the link itself works


def test_output_equal_to_virtual_dataset_source(tmp_path):
    src = tmp_path / "src.h5"
    raw_file(src)
    vds = tmp_path / "vds.h5"
    _virtual_raw(vds, src)
    before = digest(src)
    refused(run("beamform", "run", vds, "-o", src, *FAST), "also an input", "src.h5")
    assert digest(src) == before


def _virtual_raw(path, src):
    with h5py.File(src, "r") as s:
        shape, fs, pos = s["time_data"].shape, s.attrs["sample_freq"], s["mic_positions"][()]
    layout = h5py.VirtualLayout(shape, np.float32)
    layout[:] = h5py.VirtualSource(os.path.basename(src), "time_data", shape)
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("time_data", layout)
        f.attrs["sample_freq"] = fs
        f["mic_positions"] = pos


def test_show_output_equal_to_video(tmp_path, cube):
    vid = tmp_path / "vid.h5"
    raw_file(vid)
    with h5py.File(vid, "a") as f:
        f["video"] = np.zeros((2, 48, 64, 3), np.uint8)
    before = digest(vid)
    refused(run("beamform", "show", cube, "--video", vid, "-o", vid), "also an input", "vid.h5")
    assert digest(vid) == before


def test_simulate_output_equal_to_array(tmp_path):
    rec = raw_file(tmp_path / "rec.h5")
    before = digest(rec)
    refused(run("beamform", "simulate", "--array", rec, "-o", rec, "--duration", "0.2"), "also an input")
    assert digest(rec) == before


def test_geometry_report_output_equal_to_input(tmp_path):
    g = tmp_path / "g.xml"
    ok(run("beamform", "geometry", "make", "grid", "--mics", "16", "-o", g))
    before = digest(g)
    refused(run("beamform", "geometry", "report", g, "-o", g, "--freqs", "2000"), "also an input", "g.xml")
    assert digest(g) == before


def bench_doc():
    return {"figures": {"compute.realtime_factor": {"median": 2.0}}, "machine": {"cpu_model": "x"}}


def test_bench_report_output_equal_to_input(tmp_path):
    b = tmp_path / "b.json"
    b.write_text(json.dumps(bench_doc()))
    before = digest(b)
    refused(run("bench", "report", b, "-o", b), "also an input", "b.json")
    assert digest(b) == before and parts(tmp_path) == []
    out = ok(run("bench", "report", b, "-o", tmp_path / "r.md"))
    assert "wrote" in out and (tmp_path / "r.md").read_text().startswith("# Benchmark report")


def dc_dir(folder, n=2):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        np.arange(128 * 1024, dtype="<i4").tofile(folder / f"f{i + 1}.dc")
    return folder


def test_import_dc_output_equal_to_a_frame_or_the_array(tmp_path):
    src = dc_dir(tmp_path / "dc")
    before = digest(src / "f2.dc")
    refused(run("dataset", "import-dc", src, "-o", src / "f2.dc"), "f2.dc")
    assert digest(src / "f2.dc") == before
    pos = tmp_path / "pos.h5"
    raw_file(pos, ch=128)
    before = digest(pos)
    refused(run("dataset", "import-dc", src, "--array", pos, "-o", pos), "also an input", "pos.h5")
    assert digest(pos) == before


def tf_record(ctx_over=None, lists_over=None, frames=1):
    from acam.dataset.importers import encode_sequence_example

    ctx = {"action": ("int64", [3]), "location": ("int64", [0]), "subject": ("int64", [0]),
           "audio_image/height": ("int64", [36]), "audio_image/width": ("int64", [48]),
           "audio_image/depth": ("int64", [12]), "audio_data/mics": ("int64", [1]),
           "audio_data/samples": ("int64", [1024]), "video/height": ("int64", [4]),
           "video/width": ("int64", [4]), "video/depth": ("int64", [3])}
    ctx.update(ctx_over or {})
    lists = {"audio/image": [("bytes", [np.zeros((36, 48, 12), "<f4").tobytes()])] * frames,
             "audio/data": [("bytes", [np.zeros((1, 1024), "<i4").tobytes()])] * frames,
             "video/image": [("bytes", [np.zeros((4, 4, 3), "u1").tobytes()])] * frames}
    lists.update(lists_over or {})
    return encode_sequence_example(ctx, lists)


def tf_dir(folder, payloads):
    from acam.dataset.importers import write_records

    os.makedirs(folder, exist_ok=True)
    write_records(folder / "a.tfrecord", payloads)
    return folder


def test_import_tfrecord_refuses_a_folder_holding_another_dataset(tmp_path, data):
    src = tf_dir(tmp_path / "tf", [tf_record()])
    before = digest(data / "manifest.json")
    refused(run("dataset", "import-tfrecord", src, "-o", data), "holds another dataset")
    assert digest(data / "manifest.json") == before
    out = tmp_path / "imp"
    ok(run("dataset", "import-tfrecord", src, "-o", out))
    ok(run("dataset", "import-tfrecord", src, "-o", out))      # its own import may be redone


def test_library_use_protects_secondary_inputs(tmp_path, raw):
    """Without the command line: beamform_file remembers the array file it was given."""
    from acam.beamform import ArrayGeometry
    from acam.beamform.pipeline import RunSettings, beamform_file

    arr = tmp_path / "arr.csv"
    ArrayGeometry(default_array().positions[:16]).save(arr)
    before = digest(arr)
    geom = ArrayGeometry.from_file(arr)
    with pytest.raises(AcamError, match="also an input"):
        beamform_file(raw, arr, RunSettings(bins=8, rows=4, cols=4, device="cpu"), geom)
    assert digest(arr) == before


# ================================================================ 3. special files are never replaced
def test_fifo_and_folder_outputs_are_refused(tmp_path, raw):
    fifo = tmp_path / "out.h5"
    os.mkfifo(fifo)
    refused(run("beamform", "run", raw, "-o", fifo, *FAST), "not a regular file", "out.h5")
    assert os.path.exists(fifo) and not os.path.isfile(fifo)
    refused(run("beamform", "show", raw, "-o", tmp_path), "folder")


def test_device_output_is_not_replaced(tmp_path, raw):
    """A character device like /dev/full (made here, so that a regression replaces only a copy)."""
    dev = tmp_path / "full"
    try:
        os.mknod(dev, 0o666 | __import__("stat").S_IFCHR, os.makedev(1, 7))
    except (PermissionError, OSError):
        pytest.skip("making a device node needs root")
    refused(run("beamform", "run", raw, "-o", dev, *FAST), "not a regular file")
    assert not os.path.isfile(dev)


# ========================================================================= 4. nothing silently wrong
def test_missing_virtual_source_is_an_error_not_zeros(tmp_path):
    src = tmp_path / "src.h5"
    raw_file(src)
    vds = tmp_path / "vds.h5"
    _virtual_raw(vds, src)
    os.unlink(src)
    refused(run("beamform", "run", vds, "-o", tmp_path / "c.h5", *FAST), "src.h5", "does not exist")
    assert not (tmp_path / "c.h5").exists()


@pytest.mark.parametrize("first", [".5,0,0", "+0.1,0.2,0", "nan,0,0", "-.25,0.1,0"])
def test_csv_first_row_is_data_not_header(tmp_path, first):
    from acam.beamform import ArrayGeometry

    p = tmp_path / "a.csv"
    p.write_text(first + "\n0.1,0.1,0\n0.2,0.1,0\n")
    if first.startswith("nan"):
        with pytest.raises(AcamError, match="a.csv.*NaN"):
            ArrayGeometry.from_file(p)
        return
    assert ArrayGeometry.from_file(p).n_mics == 3
    p.write_text("x,y,z\n" + first + "\n")
    assert ArrayGeometry.from_file(p).n_mics == 1


def test_float16_overflow_is_refused(tmp_path):
    loud = tmp_path / "loud.h5"
    write_raw(loud, np.full((6144, 16), 2 ** 30, np.int32) * np.sign(np.random.default_rng(0).standard_normal(
        (6144, 16))).astype(np.int32), FS, default_array().positions[:16])
    refused(run("beamform", "run", loud, "-o", tmp_path / "c.h5", "--dtype", "float16", *FAST),
            "float16", "65504")
    assert not (tmp_path / "c.h5").exists() and parts(tmp_path) == []


@pytest.mark.parametrize("args, words", [
    (["spiral", "--clearance", "1.0"], ["clearance=1.0", "aperture=0.45"]),
    (["sunflower", "--clearance", "0.3"], ["clearance=0.3"]),
    (["spiral", "--arms", "0"], ["arms=0"]),
    (["grid", "--mics", "0"], ["n_mics=0"]),
    (["random", "--aperture", "nan"], ["aperture=nan"]),
    (["optimised", "--iterations", "-1", "--mics", "16"], ["iterations=-1"]),
])
def test_geometry_make_options(tmp_path, args, words):
    refused(run("beamform", "geometry", "make", *args, "-o", tmp_path / "g.xml"), *words)
    assert not (tmp_path / "g.xml").exists()


def test_spiral_and_sunflower_stay_inside_the_aperture():
    from acam.beamform.geometry import spiral, sunflower

    for g in (spiral(32, 0.45, 8, 0.2), sunflower(32, 0.45, 0.2)):
        assert np.abs(g.positions[:, :2]).max() <= 0.225 + 1e-12


@pytest.mark.parametrize("over, words", [
    ({"action": ("int64", [-1])}, ["action=-1", "0..13"]),
    ({"action": ("int64", [99])}, ["action=99"]),
    ({"location": ("int64", [-5])}, ["location=-5", "0..2"]),
    ({"audio_data/mics": ("int64", [0])}, ["audio_data/mics=0"]),
    ({"video/height": ("int64", [-4])}, ["video/height=-4"]),
])
def test_tfrecord_labels_and_shapes_are_checked(tmp_path, over, words):
    src = tf_dir(tmp_path / "tf", [tf_record(over)])
    refused(run("dataset", "import-tfrecord", src, "-o", tmp_path / "out"), "a.tfrecord", *words)
    assert not (tmp_path / "out").exists()


def test_build_limit_must_not_be_negative(tmp_path):
    refused(run("dataset", "build", "-o", tmp_path / "d", "--limit", "-1", "--device", "cpu"), "limit=-1")


def test_truncated_sequence_does_not_count_as_built(tmp_path, data):
    from acam.dataset.store import Dataset, sequence_problem

    d = Dataset(data)
    seq = d.sequences[0]
    path = d.path(seq)
    blob = digest(path)
    try:
        with open(path, "wb") as f:
            f.write(blob[: len(blob) // 3])
        assert sequence_problem(path, seq) is not None
        assert seq not in d.available(verify=True) and d.info()["built"] == len(d.sequences) - 1
    finally:
        with open(path, "wb") as f:
            f.write(blob)
    assert sequence_problem(path, seq) is None


@pytest.mark.parametrize("entry, words", [
    ({"file": "/etc/passwd"}, ["/etc/passwd", "outside the dataset folder"]),
    ({"file": "../../etc/passwd"}, ["outside"]),
    ({"action": "x"}, ["action"]),
    ({"split": "holdout"}, ["holdout"]),
    ({"n_frames": -3}, ["n_frames=-3"]),
    ("not an entry", ["sequences[0]"]),
])
def test_manifest_entries_are_checked(tmp_path, data, entry, words):
    m = json.loads((data / "manifest.json").read_text())
    bad = tmp_path / "bad"
    os.makedirs(bad)
    first = dict(m["sequences"][0], **entry) if isinstance(entry, dict) else entry
    m["sequences"] = [first] + m["sequences"][1:]
    (bad / "manifest.json").write_text(json.dumps(m))
    refused(run("dataset", "info", bad), "manifest.json", *words)


@pytest.mark.parametrize("manifest, words", [
    ({"sequences": {"a": 1}}, ["'sequences' list"]),
    ([1, 2], ["JSON object"]),
    ({"sequences": [{"name": "a"}]}, ["field 'file'"]),
])
def test_manifest_layout_is_checked(tmp_path, manifest, words):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    refused(run("dataset", "info", tmp_path), *words)


def test_mfcc_of_a_nan_cube_is_refused(tmp_path, cube):
    with h5py.File(cube, "a") as f:
        f["cube"][1, 0, 0, 0] = np.nan
    refused(run("dataset", "mfcc", cube, "-o", tmp_path / "m.h5", "--device", "cpu"), "NaN", "cube.h5")
    assert not (tmp_path / "m.h5").exists()


@pytest.mark.parametrize("args, words", [
    (["show", "{cube}", "--range", "nan"], ["dynamic_range", "nan"]),
    (["show", "{cube}", "--range", "-3"], ["dynamic_range", "-3"]),
    (["simulate", "-o", "{tmp}/s.h5", "--frame-rate", "0"], ["frame_rate=0"]),
    (["simulate", "-o", "{tmp}/s.h5", "--duration", "nan"], ["duration=nan"]),
    (["simulate", "-o", "{tmp}/s.h5", "--source", "noise@0,0,2*nan"], ["amplitude"]),
    (["geometry", "report", "{tmp}/g.xml", "--freqs", "-1000,0"], ["freqs=[-1000.0, 0.0]"]),
    (["run", "{raw}", "-o", "{tmp}/c.h5", "--frame-rate", "0"], ["frame_rate=0"]),
])
def test_beamform_options(tmp_path, raw, cube, args, words):
    ok(run("beamform", "geometry", "make", "grid", "--mics", "16", "-o", tmp_path / "g.xml"))
    args = [a.format(cube=cube, tmp=tmp_path, raw=raw) for a in args]
    refused(run("beamform", *args), *words)


def test_geometry_report_with_one_frequency_draws(tmp_path):
    g = tmp_path / "g.xml"
    ok(run("beamform", "geometry", "make", "grid", "--mics", "16", "-o", g))
    ok(run("beamform", "geometry", "report", g, "--freqs", "2000", "-o", tmp_path / "r.png"))
    assert (tmp_path / "r.png").stat().st_size > 0


# ================================================================== 5. sizes checked before memory
def test_huge_bins_fail_before_taking_memory(tmp_path, raw):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(run("beamform", "run", raw, "-o", tmp_path / "c.h5", "--bins", "1000000000", "--device", "cpu"),
            "1000000000 bins", "more than")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000     # KiB: no gigabytes taken


def test_declared_size_beyond_the_file_is_refused(tmp_path):
    p = tmp_path / "liar.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("time_data", (10 ** 12 // 16, 16), np.float32)     # never written: 0 bytes stored
        f.attrs["sample_freq"] = FS
        f["mic_positions"] = default_array().positions[:16]
    assert p.stat().st_size < 10_000
    refused(run("beamform", "run", p, "-o", tmp_path / "c.h5", *FAST), "liar.h5", "time_data", "holds 0 bytes")


def test_chunked_dataset_with_missing_chunks_is_refused(tmp_path):
    p = tmp_path / "sparse.h5"
    with h5py.File(p, "w") as f:
        d = f.create_dataset("time_data", (6144, 16), np.float32, chunks=(1024, 16))
        d[:1024] = 1.0
        f.attrs["sample_freq"] = FS
        f["mic_positions"] = default_array().positions[:16]
    refused(run("beamform", "run", p, "-o", tmp_path / "c.h5", *FAST), "sparse.h5", "1 of them")


@pytest.mark.parametrize("length", [10 ** 12, 2 ** 63, 2 ** 64 - 1])
def test_tfrecord_huge_length_is_refused_unread(tmp_path, length):
    from acam.dataset.importers import _masked_crc

    os.makedirs(tmp_path / "tf")
    head = struct.pack("<Q", length)
    (tmp_path / "tf" / "a.tfrecord").write_bytes(head + struct.pack("<I", _masked_crc(head)) + b"x" * 100)
    refused(run("dataset", "import-tfrecord", tmp_path / "tf", "-o", tmp_path / "out"), "a.tfrecord",
            f"length {length}")


def test_tfrecord_huge_length_in_gzip_is_refused(tmp_path):
    from acam.dataset.importers import _masked_crc

    os.makedirs(tmp_path / "tf")
    head = struct.pack("<Q", 10 ** 12)
    with gzip.open(tmp_path / "tf" / "a.tfrecord", "wb") as f:
        f.write(head + struct.pack("<I", _masked_crc(head)) + b"x" * 100)
    refused(run("dataset", "import-tfrecord", tmp_path / "tf", "-o", tmp_path / "out"), "a.tfrecord", "length")


def test_memory_helpers():
    from acam.core.resources import available_memory, check_allocation

    avail = available_memory()
    assert avail is None or avail > 0
    check_allocation(1024, "a small buffer")
    with pytest.raises(AcamError, match="a huge buffer needs 8.0 EiB|a huge buffer needs .* more than"):
        check_allocation(2 ** 63, "a huge buffer")


# ============================================================================= 6. nothing hangs
def test_fifo_tfrecord_does_not_hang(tmp_path):
    os.makedirs(tmp_path / "tf")
    os.mkfifo(tmp_path / "tf" / "a.tfrecord")
    r = subprocess.run([sys.executable, "-m", "acam.cli", "dataset", "import-tfrecord", str(tmp_path / "tf"),
                        "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not a regular file" in r.stderr and "a.tfrecord" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ============================================================ 7. crafted HDF5 files are one line
def crafted_raw(path, change):
    raw_file(path)
    with h5py.File(path, "a") as f:
        change(f)
    return path


def _set(where, name, value):
    def change(f):
        obj = f if where == "/" else f[where]
        if name in obj.attrs:
            del obj.attrs[name]
        obj.attrs[name] = value
    return change


def _replace(name, value):
    def change(f):
        del f[name]
        f[name] = value
    return change


RAW_CASES = {
    "string sample_freq": (_set("time_data", "sample_freq", "fast"), ["sample_freq", "'fast'"]),
    "string root sample_freq": (lambda f: (f["time_data"].attrs.__delitem__("sample_freq"),
                                           _set("/", "sample_freq", "x")(f)), ["sample_freq"]),
    "empty sample_freq": (_set("time_data", "sample_freq", h5py.Empty("f8")), ["sample_freq", "not a number"]),
    "array sample_freq": (_set("time_data", "sample_freq", np.array([1.0, 2.0])), ["sample_freq"]),
    "string frame_rate": (_set("/", "frame_rate", "12 fps"), ["frame_rate"]),
    "string hfov": (_set("/", "hfov", "wide"), ["hfov"]),
    "string mic_positions": (_replace("mic_positions", "abc"), ["mic_positions"]),
    "1-D mic_positions": (_replace("mic_positions", np.zeros(16)), ["mic_positions"]),
    "NaN mic_positions": (_replace("mic_positions", np.full((16, 3), np.nan)), ["mic_positions", "NaN"]),
    "1-D source_positions": (lambda f: f.create_dataset("source_positions", data=np.zeros(3)),
                             ["source_positions", "shape (3,)"]),
    "bad_mics all": (lambda f: f.create_dataset("bad_mics", data=np.ones(16, bool)), ["bad_mics"]),
    "bad_mics short": (lambda f: f.create_dataset("bad_mics", data=np.zeros(3, bool)), ["bad_mics"]),
    "dangling external link": (lambda f: f.__setitem__("source_positions", h5py.ExternalLink("gone.h5", "/x")),
                               ["gone.h5", "does not exist"]),
    "dangling soft link": (lambda f: f.__setitem__("source_positions", h5py.SoftLink("/nowhere")),
                           ["nowhere"]),
    "time_data strings": (_replace("time_data", np.array(["a"] * 4, "S1").reshape(2, 2)), ["time_data", "dtype"]),
    "time_data 3-D": (_replace("time_data", np.zeros((4, 4, 4), np.float32)), ["time_data", "shape"]),
    "no channels": (_replace("time_data", np.zeros((6144, 0), np.float32)), ["no channels"]),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_crafted_recordings_are_one_line(tmp_path, case):
    change, words = RAW_CASES[case]
    p = crafted_raw(tmp_path / "raw.h5", change)
    refused(run("beamform", "run", p, "-o", tmp_path / "c.h5", *FAST), "raw.h5", *words)
    assert not (tmp_path / "c.h5").exists() and parts(tmp_path) == []


CUBE_CASES = {
    "string hfov": (_set("/", "hfov", "wide"), ["hfov"]),
    "1-D source_positions": (lambda f: f.__setitem__("source_positions", np.zeros(3)), ["source_positions"]),
    "no frames": (lambda f: (f.__delitem__("cube"), f.create_dataset("cube", (0, 4, 4, 8), np.float32)),
                  ["no frames"]),
    "frequencies of another length": (_replace("frequencies", np.zeros(3)), ["frequencies"]),
    "string cube": (_replace("cube", np.array([b"x"])), ["cube"]),
}


@pytest.mark.parametrize("case", list(CUBE_CASES))
@pytest.mark.parametrize("command", ["show", "mfcc"])
def test_crafted_cubes_are_one_line(tmp_path, cube, case, command):
    change, words = CUBE_CASES[case]
    with h5py.File(cube, "a") as f:
        change(f)
    out = tmp_path / ("o.png" if command == "show" else "m.h5")
    group = "beamform" if command == "show" else "dataset"
    extra = ["--device", "cpu"] if command == "mfcc" else []
    refused(run(group, command, cube, "-o", out, *extra), "cube.h5", *words)
    assert not out.exists()


def test_cube_without_attributes_in_mfcc(tmp_path, cube):
    with h5py.File(cube, "a") as f:
        for k in list(f.attrs):
            del f.attrs[k]
    refused(run("dataset", "mfcc", cube, "-o", tmp_path / "m.h5", "--device", "cpu"), "cube.h5", "'nfft'")


def test_junk_h5_names_the_file(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 10)
    refused(run("beamform", "run", junk, "-o", tmp_path / "c.h5", *FAST), "junk.h5", "not an HDF5 file")
    refused(run("beamform", "show", junk), "junk.h5")


def test_junk_sequence_file_names_the_file(tmp_path, data):
    from acam.dataset.store import Dataset, read_crop

    d = Dataset(data)
    crop = d.crops("train", 1.0, 1)[0]
    blob = digest(crop.file)
    try:
        with open(crop.file, "wb") as f:
            f.write(b"junk" * 64)
        with pytest.raises(AcamError, match=os.path.basename(crop.file)):
            read_crop(crop)
    finally:
        with open(crop.file, "wb") as f:
            f.write(blob)


def test_varint_overflow_odd_feature_bytes_and_zero_frames(tmp_path):
    from acam.dataset.importers import _ld, _key, encode_sequence_example, parse_sequence_example

    overflow = _key(1, 2) + b"\xff" * 11 + b"\x01"
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        parse_sequence_example(overflow)
    odd = encode_sequence_example({}, {"x": [("bytes", [b"a"])]})
    float_feature = _ld(1, _ld(1, b"k") + _ld(2, _ld(2, _ld(1, b"abc"))))   # 3 bytes of packed floats
    with pytest.raises(ValueError, match="not a multiple of 4"):
        parse_sequence_example(_ld(1, float_feature))
    assert parse_sequence_example(odd)[1]["x"][0][0] == "bytes"
    src = tf_dir(tmp_path / "tf", [overflow])
    refused(run("dataset", "import-tfrecord", src, "-o", tmp_path / "o"), "a.tfrecord", "record 0")
    src2 = tf_dir(tmp_path / "tf2", [tf_record(lists_over={"audio/image": [("bytes", [b"abc"])]})])
    refused(run("dataset", "import-tfrecord", src2, "-o", tmp_path / "o"), "audio/image", "3 bytes")
    src3 = tf_dir(tmp_path / "tf3", [tf_record(frames=0)])
    refused(run("dataset", "import-tfrecord", src3, "-o", tmp_path / "o"), "no frames")


@pytest.mark.parametrize("doc, words", [
    ({"figures": [], "machine": {}}, ["not a benchmark JSON file"]),
    ({"figures": {"x": {"median": "fast"}}, "machine": {}}, ["'x'", "median"]),
    ({"figures": {}, "machine": {}, "sweeps": {"bins": {"rows": "x"}}}, ["unexpected benchmark layout"]),
    ({"figures": {}, "machine": {}, "scaling": 3}, ["unexpected"]),
    ([1, 2], ["not a benchmark JSON file"]),
])
def test_bench_report_on_wrongly_shaped_json(tmp_path, doc, words):
    b = tmp_path / "b.json"
    b.write_text(json.dumps(doc))
    refused(run("bench", "report", b, "-o", tmp_path / "r.md"), "b.json", *words)
    assert not (tmp_path / "r.md").exists()


@pytest.mark.parametrize("args, words", [
    (["beamform", "--sweep", "bogus"], ["bogus", "sweeps"]),
    (["beamform", "--tolerances", "a"], ["--tolerances"]),
    (["scale", "--workers", "a,b"], ["--workers", "'a,b'"]),
    (["scale", "--workers", "0"], ["workers"]),
    (["scale", "--seconds", "0"], ["seconds=0"]),
])
def test_bench_options_are_one_line(args, words):
    refused(run("bench", *args), *words)


# ========================================================================== 8. no orphans stay
def test_stale_parts_of_dead_writers_are_removed(tmp_path, raw):
    from acam.core.safeio import _HOST

    out = tmp_path / "cube.h5"
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        stale = tmp_path / f".cube.h5.{_HOST}.{dead.pid}.deadbeef.part"
        busy = tmp_path / f".cube.h5.{_HOST}.{live.pid}.0badcafe.part"
        other_host = tmp_path / f".cube.h5.elsewhere.{dead.pid}.12345678.part"
        for p in (stale, busy, other_host):
            p.write_bytes(b"x" * 1000)
        ok(run("beamform", "run", raw, "-o", out, *FAST))
        assert not stale.exists() and busy.exists() and other_host.exists() and out.exists()
    finally:
        live.kill()
        live.wait()


def test_killed_writer_leaves_a_part_the_next_run_removes(tmp_path):
    raw = raw_file(tmp_path / "long.h5", n=12288 * 8)
    out = tmp_path / "cube.h5"
    code = ("import sys, os, signal; from acam.core.safeio import atomic_output\n"
            f"with atomic_output({str(out)!r}) as tmp:\n"
            "    open(tmp, 'wb').write(b'x' * 100000); os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code], timeout=120)
    assert len(parts(tmp_path)) == 1 and not out.exists()
    ok(run("beamform", "run", raw, "-o", out, *FAST))
    assert parts(tmp_path) == [] and out.exists()


# ================================================================ 9. permissions follow the umask
def test_outputs_follow_the_umask(tmp_path, raw):
    old = os.umask(0o022)
    try:
        ok(run("beamform", "run", raw, "-o", tmp_path / "c.h5", *FAST))
        assert (tmp_path / "c.h5").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        ok(run("beamform", "run", raw, "-o", tmp_path / "d.h5", *FAST))
        assert (tmp_path / "d.h5").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


# ============================================================== 10. messages, full disks, others
def test_full_disk_names_the_file_and_leaves_nothing(tmp_path, raw, cube):
    out = tmp_path / "big.h5"
    with file_size_limit(100_000):
        r = run("beamform", "run", raw, "-o", out, "--bins", "64", "--no-progress", "--device", "cpu")
        r2 = run("dataset", "mfcc", cube, "-o", tmp_path / "m.h5", "--device", "cpu")
    refused(r, "big.h5", "file too large")
    assert not out.exists() and parts(tmp_path) == []
    assert r2.exit_code == 0 or "m.h5" in refused(r2)


def test_mfcc_full_disk_via_hdf5_is_one_line(tmp_path):
    from acam.core.safeio import atomic_output

    with file_size_limit(50_000), pytest.raises(AcamError, match="x.h5.*file too large"):
        with atomic_output(tmp_path / "x.h5") as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("a", data=np.zeros(1_000_000))
    assert os.listdir(tmp_path) == []


def test_frames_per_task_zero_makes_no_folder(tmp_path, raw):
    refused(run("beamform", "run", raw, "-o", tmp_path / "cubes/", "--frames-per-task", "0", *FAST),
            "frames_per_task=0")
    assert not (tmp_path / "cubes").exists()


def test_zero_frame_recording_is_one_line(tmp_path):
    p = raw_file(tmp_path / "short.h5", n=100)
    refused(run("beamform", "run", p, "-o", tmp_path / "c.h5", *FAST), "short.h5", "no complete frame")


def _limited(nbytes):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return pre


@pytest.mark.parametrize("limit", [4096, 40_960, 400_000])
def test_full_disk_process_exits_cleanly(tmp_path, raw, cube, limit):
    """In a process of its own: HDF5 must not be left with half-closed objects (which crashed the
    interpreter at exit with 'Can't decrement id ref count')."""
    for args in (["beamform", "run", str(raw), "-o", str(tmp_path / "big.h5"), "--bins", "64", "--device", "cpu",
                  "--no-progress"],
                 ["dataset", "mfcc", str(cube), "-o", str(tmp_path / "m.h5"), "--device", "cpu"]):
        r = subprocess.run([sys.executable, "-m", "acam.cli", *args], capture_output=True, text=True, timeout=300,
                           preexec_fn=_limited(limit))
        if r.returncode == 0:
            continue          # the output fitted under this limit
        assert r.returncode == 1, (r.returncode, r.stderr[-800:])
        assert r.stderr.strip().count("\n") == 0 and "file too large" in r.stderr, r.stderr[-800:]
    assert parts(tmp_path) == []


def test_reserved_space_is_given_back(tmp_path):
    from acam.core.safeio import h5_end

    p = raw_file(tmp_path / "r.h5")
    assert h5_end(p) == p.stat().st_size < 6144 * 16 * 4 + 65536
