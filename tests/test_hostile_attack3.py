"""Hostile input, second audit (issue 12): the classes an independent sweep still found failing.

Each test makes small real files in ``tmp_path``, runs the real command line and asserts: a non-zero
exit, exactly one ``Error:`` line naming the problem, no traceback, every file that was there before
byte-for-byte unchanged, and no new file (no part file, no half-made output folder) left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zipfile

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acam.beamform import default_array, write_raw
from acam.cli import acam
from fakes import fake_dataset, fake_run

FS = 12288.0
FAST = ["--bins", "8", "--rows", "4", "--cols", "4", "--no-progress", "--device", "cpu"]


# ------------------------------------------------------------------------------------------ helpers
def run(*args):
    return CliRunner().invoke(acam, [str(a) for a in args], catch_exceptions=True)


def snapshot(root) -> dict:
    """Every file under ``root`` (links not followed) -> its bytes (None for a special file)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, n)
            if os.path.islink(p):
                out[p] = ("link", os.readlink(p))
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[p] = f.read()
            else:
                out[p] = None
        for x in dirs:
            out.setdefault(os.path.join(d, x) + os.sep, "dir")
    return out


def refused(r, *words):
    """One ``Error:`` line naming ``words``, a non-zero exit, no traceback."""
    assert r.exit_code not in (0, None), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.output
    for w in words:
        assert str(w).lower() in lines[0].lower(), (w, lines[0])
    return lines[0]


def unchanged(before: dict, root, allowed=()) -> None:
    after = snapshot(root)
    changed = [p for p, v in before.items() if after.get(p) != v]
    assert not changed, f"inputs changed or removed: {changed}"
    new = [p for p in after if p not in before and os.path.basename(p.rstrip(os.sep)) not in allowed]
    assert not new, f"left behind: {new}"


def refuses_cleanly(tmp_path, args, *words, allowed=()):
    """``refused`` with the words looked for outside ``tmp_path`` (whose name holds the test's)."""
    before = snapshot(tmp_path)
    r = run(*args)
    line = refused(r)
    for w in words:
        assert str(w).lower() in line.replace(str(tmp_path), "TMP").lower(), (w, line)
    unchanged(before, tmp_path, allowed)
    return line


def ok(r):
    assert r.exit_code == 0, r.output
    return r.output


def raw_file(path, n=6144, ch=16, **attrs):
    rng = np.random.default_rng(0)
    write_raw(path, rng.standard_normal((n, ch)).astype(np.float32), FS, default_array().positions[:ch], 12.0,
              attrs=attrs or None)
    return path


def tf_record(ctx_over=None, lists_over=None, frames=1, image=None):
    from acam.dataset.importers import encode_sequence_example

    ctx = {"action": ("int64", [3]), "location": ("int64", [0]), "subject": ("int64", [0]),
           "audio_image/height": ("int64", [36]), "audio_image/width": ("int64", [48]),
           "audio_image/depth": ("int64", [12]), "audio_data/mics": ("int64", [1]),
           "audio_data/samples": ("int64", [1024]), "video/height": ("int64", [4]),
           "video/width": ("int64", [4]), "video/depth": ("int64", [3])}
    ctx.update(ctx_over or {})
    img = np.zeros((36, 48, 12), "<f4") if image is None else np.asarray(image, "<f4")
    lists = {"audio/image": [("bytes", [img.tobytes()])] * frames,
             "audio/data": [("bytes", [np.zeros((1, 1024), "<i4").tobytes()])] * frames,
             "video/image": [("bytes", [np.zeros((4, 4, 3), "u1").tobytes()])] * frames}
    lists.update(lists_over or {})
    return encode_sequence_example(ctx, lists)


def tf_dir(folder, payloads):
    from acam.dataset.importers import write_records

    os.makedirs(folder, exist_ok=True)
    write_records(folder / "a.tfrecord", payloads)
    return folder


@pytest.fixture
def raw(tmp_path):
    return raw_file(tmp_path / "raw.h5")


@pytest.fixture
def cube(tmp_path, raw):
    out = tmp_path / "cube.h5"
    ok(run("beamform", "run", raw, "-o", out, *FAST))
    return out


# ================================================= 1. data loss: outputs inside the input tree
@pytest.fixture(scope="module")
def one_sequence(tmp_path_factory):
    """The tiny preset with one sequence built (seconds): a dataset ``diagnose`` accepts."""
    from acam.dataset.build import build

    folder = tmp_path_factory.mktemp("one") / "data"
    build(folder, "tiny", 0, "cpu", only=["a00_s1_p00_r0"])
    return folder


def test_diagnose_output_into_the_dataset_it_reads(tmp_path, one_sequence):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(one_sequence, data)
    for target in ("manifest.json", "sequences/report.json", "diag.json"):     # the manifest was replaced
        refuses_cleanly(tmp_path, ["dataset", "diagnose", data, "--limit", "1", "-o", data / target],
                        "inside the dataset folder")
    refuses_cleanly(tmp_path, ["dataset", "diagnose", data, "--limit", "1", "-o", tmp_path / "d.png"], "d.png")


def test_learn_output_into_a_dataset_folder(tmp_path):
    pytest.importorskip("torch")
    data = fake_dataset(tmp_path / "data")
    other = fake_dataset(tmp_path / "other")
    common = ["--model", "dualcamnet", "--epochs", "1", "--crops", "1", "--device", "cpu", "--no-progress"]
    refuses_cleanly(tmp_path, ["learn", "train", "--data", data, "-o", data, *common], "dataset")
    refuses_cleanly(tmp_path, ["learn", "train", "--data", data, "-o", data / "sequences", *common], "dataset")
    refuses_cleanly(tmp_path, ["learn", "train", "--data", data, "-o", other, *common], "dataset")
    teacher = fake_run(tmp_path / "t", data)                 # a student written over its teacher's best.pt
    refuses_cleanly(tmp_path, ["learn", "distill", "--teacher", teacher, "--student", "hearnet", "--data", data,
                               "-o", teacher, "--epochs", "1", "--crops", "1", "--device", "cpu", "--no-progress"],
                    "teacher run folder")
    sounds = tmp_path / "sounds"                             # a dataset built into its folder of recordings
    os.makedirs(sounds / "0")
    refuses_cleanly(tmp_path, ["dataset", "build", "-o", sounds / "ds", "--sounds", sounds, "--no-progress"],
                    "folder of recordings")


def test_import_tfrecord_output_inside_its_source(tmp_path):
    src = tf_dir(tmp_path / "tf", [tf_record()])
    (src / "manifest.json").write_text("my notes")          # not a record: still the user's file
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", src, "-o", src], "tf")
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", src, "-o", src / "out"], "tf")


def test_output_folder_holding_an_input_folder(tmp_path):
    """The reverse of the above: an output folder that contains a folder the command reads (the
    importer would write out/sequences/*.h5 among the records of out/sequences)."""
    out = tmp_path / "out"
    src = tf_dir(out / "sequences", [tf_record()])
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", src, "-o", out], "does not contain it")
    sounds = tmp_path / "ds" / "sounds"
    os.makedirs(sounds / "0")
    refuses_cleanly(tmp_path, ["dataset", "build", "-o", tmp_path / "ds", "--sounds", sounds, "--no-progress"],
                    "does not contain it")


def test_dataset_command_given_a_run_folder(tmp_path):
    pytest.importorskip("torch")
    data = fake_dataset(tmp_path / "data")
    runf = fake_run(tmp_path / "r1", data)
    refuses_cleanly(tmp_path, ["dataset", "info", runf], "run")
    refuses_cleanly(tmp_path, ["dataset", "build", "-o", runf, "--no-progress", "--device", "cpu"], "run")
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", tf_dir(tmp_path / "tf", [tf_record()]), "-o", runf],
                    "run")
    refuses_cleanly(tmp_path, ["learn", "evaluate", data, "--device", "cpu"], "dataset folder")


def test_build_into_a_folder_of_sequences_without_manifest(tmp_path):
    out = tmp_path / "out"
    os.makedirs(out / "sequences")
    (out / "sequences" / "a00_s1_p00_r0.h5").write_bytes(b"precious")
    refuses_cleanly(tmp_path, ["dataset", "build", "-o", out, "--no-progress", "--device", "cpu"], "manifest")


# ====================================================== 2. options checked before anything is made
def test_build_negative_retries_makes_no_folder(tmp_path):
    refuses_cleanly(tmp_path, ["dataset", "build", "-o", tmp_path / "new", "--retries", "-5", "--no-progress"],
                    "retries")


def test_build_unreachable_scheduler_leaves_nothing(tmp_path):
    pytest.importorskip("distributed")
    refuses_cleanly(tmp_path, ["dataset", "build", "-o", tmp_path / "new", "--scheduler", "tcp://127.0.0.1:9",
                               "--no-progress", "--device", "cpu"], "127.0.0.1:9")


def test_show_same_output_twice(tmp_path, cube):
    x = tmp_path / "x.gif"
    refuses_cleanly(tmp_path, ["beamform", "show", cube, "-o", x, "--animate", x], "x.gif")
    y = tmp_path / "y.png"
    refuses_cleanly(tmp_path, ["beamform", "show", cube, "-o", y, "--animate", str(tmp_path / "." / "y.png")],
                    "y.png")


def test_show_animate_checks_its_path_before_the_png(tmp_path, cube):
    refuses_cleanly(tmp_path, ["beamform", "show", cube, "-o", tmp_path / "p.png", "--animate",
                               tmp_path / "nowhere" / "a.gif"], "nowhere")
    refuses_cleanly(tmp_path, ["beamform", "show", cube, "-o", tmp_path / "p.png", "--animate", cube], "cube.h5")
    refuses_cleanly(tmp_path, ["beamform", "show", cube, "-o", tmp_path / "p.png", "--animate",
                               tmp_path / "a.xyz"], "a.xyz")


# ====================================================== 3. absurd sizes refused before allocation
def test_simulate_absurd_sizes(tmp_path):
    out = tmp_path / "o.h5"
    refuses_cleanly(tmp_path, ["beamform", "simulate", "-o", out, "--duration", "1e9"], "1e+09 s")
    refuses_cleanly(tmp_path, ["beamform", "simulate", "-o", out, "--sample-rate", "1e300"], "sample_freq")
    refuses_cleanly(tmp_path, ["beamform", "simulate", "-o", out, "--sample-rate", "1", "--frame-rate", "0.5"],
                    "sample_freq")
    refuses_cleanly(tmp_path, ["beamform", "simulate", "-o", out, "--source", "noise@1e6,0,2"], "1000")
    refuses_cleanly(tmp_path, ["beamform", "simulate", "-o", out, "--room", "shoebox", "--room-dim", "1e6,1e6,3"],
                    "room_dim")
    refuses_cleanly(tmp_path, ["beamform", "simulate", "-o", out, "--room", "shoebox", "--array-pos", "1e5,1,1"],
                    "array_position")


def test_raw_file_absurd_sample_freq_and_samples(tmp_path):
    for fs in (1e300, 1.0, 1e-3):
        p = raw_file(tmp_path / "raw.h5")
        with h5py.File(p, "a") as f:
            f["time_data"].attrs["sample_freq"] = fs
            f.attrs["sample_freq"] = fs
            f.attrs["frame_rate"] = min(12.0, fs / 2)
        refuses_cleanly(tmp_path, ["beamform", "run", p, "-o", tmp_path / "c.h5", *FAST], "sample_freq")
    big = tmp_path / "big.h5"                    # 2e12 samples declared, none written (chunked)
    with h5py.File(big, "w") as f:
        f.create_dataset("time_data", shape=(2 * 10 ** 12, 1), dtype="f4", chunks=(1 << 16, 1))
        f["time_data"].attrs["sample_freq"] = FS
        f["mic_positions"] = np.zeros((1, 3))
    refuses_cleanly(tmp_path, ["beamform", "run", big, "-o", tmp_path / "c.h5", *FAST], "big.h5")


def test_array_coordinates_beyond_a_kilometre(tmp_path, raw):
    csv = tmp_path / "far.csv"
    csv.write_text("".join(f"{1e6 + i},0,0\n" for i in range(16)))
    refuses_cleanly(tmp_path, ["beamform", "run", raw, "--array", csv, "-o", tmp_path / "c.h5", *FAST], "1000")
    p = raw_file(tmp_path / "far.h5")
    with h5py.File(p, "a") as f:
        f["mic_positions"][0, 0] = 5e3
    refuses_cleanly(tmp_path, ["beamform", "run", p, "-o", tmp_path / "c.h5", *FAST], "1000")
    p = raw_file(tmp_path / "src.h5")
    with h5py.File(p, "a") as f:
        f["source_positions"] = np.array([[1e30, 0.0, 2.0]])
    refuses_cleanly(tmp_path, ["beamform", "run", p, "-o", tmp_path / "c.h5", *FAST], "source_positions")
    refuses_cleanly(tmp_path, ["beamform", "run", raw, "-o", tmp_path / "c.h5", "--focus", "1e9", *FAST], "focus")
    refuses_cleanly(tmp_path, ["beamform", "run", raw, "-o", tmp_path / "c.h5", "--speed-of-sound", "1e-30",
                               *FAST], "speed_of_sound")


def test_text_arrays_larger_than_64_mib(tmp_path):
    for name, head in (("big.csv", b"0,0,0\n"), ("big.xml", b'<?xml version="1.0"?>\n<MicArray name="x">\n')):
        p = tmp_path / name
        with open(p, "wb") as f:
            f.write(head)
            f.truncate(90 * 10 ** 6)             # sparse: a 90 MB file that costs no disk
        refuses_cleanly(tmp_path, ["beamform", "geometry", "report", p, "--freqs", "1000,2000"], name, "bytes")


# ====================================================== 4. HDF5 storage that does not hold the data
def _vds(tmp_path, rows, mapped):
    src = raw_file(tmp_path / "src.h5")
    with h5py.File(src, "r") as s:
        pos = s["time_data"].shape, s["mic_positions"][()]
    layout = h5py.VirtualLayout((rows, 16), np.float32)
    layout[:mapped] = h5py.VirtualSource("src.h5", "time_data", (6144, 16))[:mapped]
    with h5py.File(tmp_path / "vds.h5", "w") as f:
        f.create_virtual_dataset("time_data", layout)
        f["time_data"].attrs["sample_freq"] = FS
        f["mic_positions"] = pos[1]
    return tmp_path / "vds.h5"


def test_virtual_dataset_mapping_shorter_than_the_dataset(tmp_path):
    vds = _vds(tmp_path, 6144, 3000)
    refuses_cleanly(tmp_path, ["beamform", "run", vds, "-o", tmp_path / "c.h5", *FAST], "vds.h5", "time_data")
    short = raw_file(tmp_path / "short.h5", n=3000)       # the whole of a source that is shorter than declared
    layout = h5py.VirtualLayout((6144, 16), np.float32)
    layout[:] = h5py.VirtualSource("short.h5", "time_data", (6144, 16))
    with h5py.File(tmp_path / "whole.h5", "w") as f:
        f.create_virtual_dataset("time_data", layout)
        f["time_data"].attrs["sample_freq"] = FS
        f["mic_positions"] = default_array().positions[:16]
    assert short.exists()
    refuses_cleanly(tmp_path, ["beamform", "run", tmp_path / "whole.h5", "-o", tmp_path / "c.h5", *FAST],
                    "whole.h5", "short.h5")


def test_virtual_dataset_of_a_billion_rows(tmp_path):
    vds = _vds(tmp_path, 10 ** 9, 6144)
    r = subprocess.run([sys.executable, "-m", "acam.cli", "beamform", "run", str(vds), "-o", str(tmp_path / "c.h5"),
                        *FAST], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and not r.stdout.strip(), r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "vds.h5" in lines[0] and "time_data" in lines[0], r.stderr
    assert not os.path.exists(tmp_path / "c.h5")


def test_external_storage_shorter_than_the_dataset(tmp_path, monkeypatch):
    ext = tmp_path / "samples.bin"
    ext.write_bytes(np.zeros((3000, 16), "<f4").tobytes())
    with h5py.File(tmp_path / "ext.h5", "w") as f:
        f.create_dataset("time_data", shape=(6144, 16), dtype="<f4", external=[("samples.bin", 0, 6144 * 64)])
        f["time_data"].attrs["sample_freq"] = FS
        f["mic_positions"] = default_array().positions[:16]
    os.makedirs(tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path / "elsewhere")           # HDF5 looks for samples.bin here: not found
    refuses_cleanly(tmp_path, ["beamform", "run", tmp_path / "ext.h5", "-o", tmp_path / "c.h5", *FAST],
                    "samples.bin")
    monkeypatch.chdir(tmp_path)                         # found, but 3000 rows of 6144
    refuses_cleanly(tmp_path, ["beamform", "run", tmp_path / "ext.h5", "-o", tmp_path / "c.h5", *FAST],
                    "samples.bin", "holds")


# ================================================================ 5. NaN, inf, negative power
def test_nan_in_crops(tmp_path):
    pytest.importorskip("torch")
    data = fake_dataset(tmp_path / "data", fill=np.nan)
    refuses_cleanly(tmp_path, ["learn", "train", "--model", "dualcamnet", "--data", data, "-o", tmp_path / "r",
                               "--epochs", "1", "--crops", "1", "--device", "cpu", "--no-progress"], "nan")


def test_inf_in_tfrecord_import(tmp_path):
    img = np.zeros((36, 48, 12), "<f4")
    img[3, 4, 5] = np.inf
    src = tf_dir(tmp_path / "tf", [tf_record(image=img)])
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", src, "-o", tmp_path / "out"], "a.tfrecord", "inf")
    img[3, 4, 5] = np.nan
    src = tf_dir(tmp_path / "tf", [tf_record(image=img)])
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", src, "-o", tmp_path / "out"], "a.tfrecord", "nan")


def test_empty_tfrecord_folder(tmp_path):
    os.makedirs(tmp_path / "empty")
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", tmp_path / "empty", "-o", tmp_path / "out"], "empty")
    src = tf_dir(tmp_path / "tf", [])                        # a record file holding no record
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", src, "-o", tmp_path / "out"], "no record")


def test_show_negative_power_cube(tmp_path, cube):
    with h5py.File(cube, "a") as f:
        f["cube"][...] = -f["cube"][()]
    refuses_cleanly(tmp_path, ["beamform", "show", cube, "-o", tmp_path / "p.png"], "negative")
    refuses_cleanly(tmp_path, ["beamform", "show", cube, "--animate", tmp_path / "a.gif"], "negative")


# ======================================================= 6. tracebacks that must become one line
def test_soft_link_loops(tmp_path):
    loop = tmp_path / "loop.h5"
    os.symlink(loop, loop)                                   # a file-system link to itself
    refuses_cleanly(tmp_path, ["beamform", "run", loop, "-o", tmp_path / "c.h5", *FAST], "loop.h5")
    p = raw_file(tmp_path / "raw.h5")                        # HDF5 soft links pointing at each other
    with h5py.File(p, "a") as f:
        f["a"] = h5py.SoftLink("/b")
        f["b"] = h5py.SoftLink("/a")
    refuses_cleanly(tmp_path, ["beamform", "run", p, "-o", tmp_path / "c.h5", *FAST], "raw.h5")
    data = fake_dataset(tmp_path / "data")                   # a sequence file that is a link loop
    seq = data / "sequences" / "a00_s1_p00_r0.h5"
    os.unlink(seq)
    os.symlink(seq, seq)
    ok(run("dataset", "info", data))                         # counted as not built, no traceback
    src = tmp_path / "tf"
    os.makedirs(src)
    os.symlink(src / "x.tfrecord", src / "x.tfrecord")
    refuses_cleanly(tmp_path, ["dataset", "import-tfrecord", src, "-o", tmp_path / "out"], "x.tfrecord")


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1" * 5000, "NaN", "Infinity"])
def test_json_with_huge_numbers(tmp_path, number):
    data = fake_dataset(tmp_path / "data")
    text = (data / "manifest.json").read_text()
    (data / "manifest.json").write_text(text.replace('"n_frames": 12', f'"n_frames": {number}', 1))
    refuses_cleanly(tmp_path, ["dataset", "info", data], "manifest.json")
    bench = tmp_path / "b.json"
    bench.write_text('{"machine": {}, "figures": {"x": {"median": %s}}}' % number)
    refuses_cleanly(tmp_path, ["bench", "report", bench], "b.json")


def test_zip_named_npy(tmp_path, raw):
    z = tmp_path / "arr.npy"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("positions.npy", b"\x93NUMPY")
    refuses_cleanly(tmp_path, ["beamform", "run", raw, "--array", z, "-o", tmp_path / "c.h5", *FAST], "arr.npy")
    refuses_cleanly(tmp_path, ["beamform", "geometry", "report", z, "--freqs", "1000,2000"], "arr.npy")


def test_manifest_with_too_few_action_names(tmp_path):
    data = fake_dataset(tmp_path / "data")
    m = json.loads((data / "manifest.json").read_text())
    m["actions"] = ["clap", "knock"]
    (data / "manifest.json").write_text(json.dumps(m))
    refuses_cleanly(tmp_path, ["dataset", "info", data], "actions")
    m["actions"] = "clap"
    (data / "manifest.json").write_text(json.dumps(m))
    refuses_cleanly(tmp_path, ["dataset", "info", data], "actions")


def test_room_too_large_for_its_rt60(tmp_path):
    refuses_cleanly(tmp_path, ["beamform", "simulate", "-o", tmp_path / "o.h5", "--room", "shoebox",
                               "--room-dim", "900,900,900", "--rt60", "0.05", "--duration", "0.1"], "rt60")


def test_transfer_with_one_class(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import scipy.io.wavfile

    data = fake_dataset(tmp_path / "data")
    student = fake_run(tmp_path / "student", data, "hearnet")
    rows = []
    for i in range(10):
        scipy.io.wavfile.write(tmp_path / f"w{i}.wav", 12288, np.random.default_rng(i).standard_normal(12288)
                               .astype(np.float32))
        rows.append(f"w{i}.wav,dog\n")
    (tmp_path / "one.csv").write_text("".join(rows))
    refuses_cleanly(tmp_path, ["learn", "transfer", student, "--data", tmp_path / "one.csv", "--seconds", "1"],
                    "class")
    (tmp_path / "bytes.csv").write_bytes(b"w0.wav,\xff\xfe\n")                  # not UTF-8
    refuses_cleanly(tmp_path, ["learn", "transfer", student, "--data", tmp_path / "bytes.csv"], "bytes.csv")
    (tmp_path / "split.csv").write_text("w0.wav,dog,tarin\nw1.wav,cat,test\n")    # a split that is none
    refuses_cleanly(tmp_path, ["learn", "transfer", student, "--data", tmp_path / "split.csv"], "tarin")


# ============================================================ 7. part files, caches and warnings
def test_stale_part_of_a_zombie_or_gone_writer_is_removed(tmp_path, raw):
    import socket
    import re as _re

    host = _re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])     # exits; never waited for: a zombie
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()                                                     # exits and is reaped: gone
    import time

    for _ in range(100):
        with open(f"/proc/{zombie.pid}/stat") as f:
            if f.read().split(") ")[1].startswith("Z"):
                break
        time.sleep(0.05)
    stale = [tmp_path / f".c.h5.{host}.{p.pid}.{'ab' * 4}.part" for p in (zombie, gone)]
    for s in stale:
        s.write_bytes(b"x" * 1000)
    try:
        ok(run("beamform", "run", raw, "-o", tmp_path / "c.h5", *FAST))
        assert not [s for s in stale if s.exists()], os.listdir(tmp_path)
    finally:
        zombie.wait()


def test_very_long_output_name(tmp_path, raw):
    name = "c" * 240 + ".h5"                                   # fits a name (255), not its part file
    ok(run("beamform", "run", raw, "-o", tmp_path / name, *FAST))
    assert (tmp_path / name).is_file() and not [n for n in os.listdir(tmp_path) if n.endswith(".part")]
    png = "p" * 250 + ".png"
    ok(run("beamform", "show", tmp_path / name, "-o", tmp_path / png))
    assert (tmp_path / png).is_file()


def test_poisoned_soft_label_cache_is_replaced(tmp_path):
    torch = pytest.importorskip("torch")
    data = fake_dataset(tmp_path / "data")
    teacher = fake_run(tmp_path / "t", data)
    common = ["--student", "hearnet", "--teacher", teacher, "--data", data, "--epochs", "1", "--crops", "1",
              "--device", "cpu", "--no-progress"]
    ok(run("learn", "distill", *common, "-o", tmp_path / "s1"))
    (cache,) = [teacher / n for n in os.listdir(teacher) if n.startswith("soft_")]
    good = torch.load(cache, weights_only=True)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    poisons = [Payload(), torch.zeros_like(good), good + 3.0, torch.full_like(good, float("nan")), good[:1]]
    for i, poison in enumerate(poisons):
        torch.save(poison, cache)
        r = run("learn", "distill", *common, "-o", tmp_path / f"s{i + 2}")
        ok(r)
        assert not (tmp_path / "pwned").exists()
        notes = [ln for ln in r.output.splitlines() if "soft-label cache" in ln]
        assert len(notes) == 1, r.output
        assert torch.allclose(torch.load(cache, weights_only=True), good, atol=1e-5)   # replaced


@pytest.mark.filterwarnings("always")
def test_python_warnings_are_one_line(tmp_path, cube, monkeypatch):
    from acam.beamform import plot

    real = plot.show_figure

    def noisy(*a, **k):
        warnings.warn("something odd\nspanning two lines", RuntimeWarning)
        return real(*a, **k)

    monkeypatch.setattr(plot, "show_figure", noisy)
    r = run("beamform", "show", cube, "-o", tmp_path / "p.png")
    ok(r)
    lines = r.output.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("warning: something odd"), r.output
    assert "warnings.warn" not in r.output and "RuntimeWarning:" not in r.output


def test_samples_beyond_float32_power(tmp_path):
    x = np.random.default_rng(0).standard_normal((6144, 16))
    x[100, 3] = 1e300                                          # float64: inf once cast to float32
    write_raw(tmp_path / "big.h5", x, FS, default_array().positions[:16], 12.0)
    refuses_cleanly(tmp_path, ["beamform", "run", tmp_path / "big.h5", "-o", tmp_path / "c.h5", *FAST],
                    "big.h5", "sample 100")
    write_raw(tmp_path / "loud.h5", (x[:, :] * 0 + 1e20).astype(np.float32), FS, default_array().positions[:16])
    refuses_cleanly(tmp_path, ["beamform", "run", tmp_path / "loud.h5", "-o", tmp_path / "c.h5", *FAST],
                    "loud.h5")
