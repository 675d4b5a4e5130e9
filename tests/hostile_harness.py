"""A hostile user's session against every command: crafted files, special files, impossible options,
full disks, killed writers.  Each case runs the real command line (in this process, a fresh folder
per case, an alarm against hangs) and is *handled cleanly* when

- a refusal: the exit status is non-zero, the output is one ``Error:`` line naming the problem
  (the words the case lists), and no traceback escaped;
- inputs intact: every file present before the command is byte-for-byte the same afterwards (and
  still the same kind of file: a FIFO stays a FIFO);
- no partial output: no ``.part`` file and, after a refusal, no new file at all;
- nothing hangs (60 s per case) - and the cases that expect success check their own result.

Run it (about two minutes on two cores)::

    python tests/hostile_harness.py              # every case, a summary and the rate
    python tests/hostile_harness.py -k tfrecord  # the cases whose name holds 'tfrecord'
    python tests/hostile_harness.py --list

It is not part of the pytest run (tests/test_hostile.py holds one test per class of fault); it is
the broad sweep that measures the rate.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from fakes import fake_dataset, fake_run

FS = 12288.0
FAST = ["--bins", "8", "--rows", "4", "--cols", "4", "--no-progress", "--device", "cpu"]


@dataclass
class Case:
    name: str
    setup: object                      # (ws: Path) -> list of CLI arguments
    words: tuple = ()                  # must appear in the error line
    expect: str = "refuse"             # "refuse" or "succeed"
    check: object = None               # (ws, output) -> None, raises AssertionError when wrong
    new_ok: tuple = ()                 # file names a refusal may leave (none by default)
    env: dict = field(default_factory=dict)


CASES: list[Case] = []


def case(name, *words, expect="refuse", check=None, new_ok=()):
    def deco(fn):
        CASES.append(Case(name, fn, words, expect, check, new_ok))
        return fn
    return deco


# -------------------------------------------------------------------------------------- materials
def raw_file(path, n=6144, ch=16, dtype=np.float32, scale=1.0):
    from acam.beamform import default_array, write_raw

    rng = np.random.default_rng(0)
    write_raw(path, (rng.standard_normal((n, ch)) * scale).astype(dtype), FS, default_array().positions[:ch], 12.0)
    return path


def crafted_raw(path, change):
    raw_file(path)
    with h5py.File(path, "a") as f:
        change(f)
    return path


def set_attr(where, name, value):
    def change(f):
        obj = f if where == "/" else f[where]
        if name in obj.attrs:
            del obj.attrs[name]
        obj.attrs[name] = value
    return change


def replace(name, value):
    def change(f):
        if name in f:
            del f[name]
        f[name] = value
    return change


_BASE: dict = {}


def base(kind: str) -> Path:
    """Shared materials made once per session: a cube, a dataset, a teacher run."""
    if kind in _BASE:
        return _BASE[kind]
    root = Path(tempfile.mkdtemp(prefix="acam-hostile-base-"))
    if kind == "cube":
        raw = raw_file(root / "raw.h5")
        _cli(["beamform", "run", str(raw), "-o", str(root / "cube.h5")] + FAST)
        _BASE[kind] = root / "cube.h5"
    elif kind == "data":
        _BASE[kind] = fake_dataset(root / "data")
    elif kind == "run":
        _BASE[kind] = fake_run(root / "run", base("data"))
    elif kind == "student":
        _BASE[kind] = fake_run(root / "student", base("data"), "hearnet")
    return _BASE[kind]


def copy(kind: str, ws: Path) -> Path:
    src = base(kind)
    dst = ws / src.name
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return dst


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


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


def tf_dir(ws: Path, payloads=None, raw_bytes=None, compress=True) -> Path:
    from acam.dataset.importers import write_records

    d = ws / "tf"
    os.makedirs(d, exist_ok=True)
    if raw_bytes is not None:
        opener = gzip.open if compress else open
        with opener(d / "a.tfrecord", "wb") as f:
            f.write(raw_bytes)
    else:
        write_records(d / "a.tfrecord", payloads, compress)
    return d


def length_header(length: int) -> bytes:
    from acam.dataset.importers import _masked_crc

    head = struct.pack("<Q", length)
    return head + struct.pack("<I", _masked_crc(head))


# ============================================================================ beamform run: recordings
RAW_ATTRS = {
    "string sample_freq": (set_attr("time_data", "sample_freq", "fast"), ["sample_freq"]),
    "bytes sample_freq": (set_attr("time_data", "sample_freq", np.bytes_(b"12288")), ["sample_freq"]),
    "empty sample_freq": (set_attr("time_data", "sample_freq", h5py.Empty("f8")), ["sample_freq"]),
    "array sample_freq": (set_attr("time_data", "sample_freq", np.array([1.0, 2.0])), ["sample_freq"]),
    "negative sample_freq": (set_attr("time_data", "sample_freq", -5.0), ["sample_freq"]),
    "nan sample_freq": (set_attr("time_data", "sample_freq", np.nan), ["sample_freq"]),
    "no sample_freq": (lambda f: (f["time_data"].attrs.__delitem__("sample_freq"),
                                  f.attrs.__delitem__("sample_freq")), ["sample rate missing"]),
    "string frame_rate": (set_attr("/", "frame_rate", "12 fps"), ["frame_rate"]),
    "zero frame_rate": (set_attr("/", "frame_rate", 0.0), ["frame_rate"]),
    "huge frame_rate": (set_attr("/", "frame_rate", 1e9), ["frame_rate"]),
    "string hfov": (set_attr("/", "hfov", "wide"), ["hfov"]),
    "hfov 400": (set_attr("/", "hfov", 400.0), ["hfov"]),
    "string vfov": (set_attr("/", "vfov", "tall"), ["vfov"]),
    "string mic_positions": (replace("mic_positions", "abc"), ["mic_positions"]),
    "1-D mic_positions": (replace("mic_positions", np.zeros(16)), ["mic_positions"]),
    "NaN mic_positions": (replace("mic_positions", np.full((16, 3), np.nan)), ["mic_positions"]),
    "mic_positions for 8 mics": (replace("mic_positions", np.zeros((8, 3))), ["16 channels", "8 microphones"]),
    "1-D source_positions": (replace("source_positions", np.zeros(3)), ["source_positions"]),
    "NaN source_positions": (replace("source_positions", np.full((1, 3), np.nan)), ["source_positions"]),
    "bad_mics all": (replace("bad_mics", np.ones(16, bool)), ["bad_mics"]),
    "bad_mics short": (replace("bad_mics", np.zeros(3, bool)), ["bad_mics"]),
    "bad_mics strings": (replace("bad_mics", np.array([b"x"] * 16)), ["bad_mics"]),
    "dangling external link": (replace("source_positions", h5py.ExternalLink("gone.h5", "/x")), ["gone.h5"]),
    "dangling soft link": (replace("source_positions", h5py.SoftLink("/nowhere")), ["nowhere"]),
    "time_data strings": (replace("time_data", np.array([b"a"] * 4).reshape(2, 2)), ["time_data"]),
    "time_data 3-D": (replace("time_data", np.zeros((4, 4, 4), np.float32)), ["time_data", "shape"]),
    "time_data complex": (replace("time_data", np.zeros((6144, 16), np.complex64)), ["time_data", "dtype"]),
    "no channels": (replace("time_data", np.zeros((6144, 0), np.float32)), ["no channels"]),
    "NaN samples": (lambda f: f["time_data"].__setitem__((100, 3), np.nan), ["NaN"]),
    "time_data a group": (lambda f: (f.__delitem__("time_data"), f.create_group("time_data")), ["time_data"]),
}
for _name, (_change, _words) in RAW_ATTRS.items():
    def _setup(ws, change=_change):
        return ["beamform", "run", crafted_raw(ws / "raw.h5", change), "-o", ws / "c.h5"] + FAST
    case(f"run: recording with {_name}", "raw.h5", *_words)(_setup)


@case("run: junk file", "junk.h5", "not an HDF5 file")
def _(ws):
    (ws / "junk.h5").write_bytes(b"\x00junk" * 50)
    return ["beamform", "run", ws / "junk.h5", "-o", ws / "c.h5"] + FAST


@case("run: empty file", "empty.h5")
def _(ws):
    (ws / "empty.h5").write_bytes(b"")
    return ["beamform", "run", ws / "empty.h5", "-o", ws / "c.h5"] + FAST


@case("run: truncated recording", "raw.h5")
def _(ws):
    raw_file(ws / "full.h5")
    blob = (ws / "full.h5").read_bytes()
    (ws / "raw.h5").write_bytes(blob[: len(blob) // 2])
    os.unlink(ws / "full.h5")
    return ["beamform", "run", ws / "raw.h5", "-o", ws / "c.h5"] + FAST


@case("run: FIFO as the recording", "raw.h5", "not a regular file")
def _(ws):
    os.mkfifo(ws / "raw.h5")
    return ["beamform", "run", ws / "raw.h5", "-o", ws / "c.h5"] + FAST


@case("run: folder as the recording", "raw.h5", "folder")
def _(ws):
    os.mkdir(ws / "raw.h5")
    return ["beamform", "run", ws / "raw.h5", "-o", ws / "c.h5"] + FAST


@case("run: missing recording", "nothere.h5", "does not exist")
def _(ws):
    return ["beamform", "run", ws / "nothere.h5", "-o", ws / "c.h5"] + FAST


@case("run: too short for a frame", "raw.h5", "no complete frame")
def _(ws):
    return ["beamform", "run", raw_file(ws / "raw.h5", n=100), "-o", ws / "c.h5"] + FAST


@case("run: 10^12 samples declared in a small file", "liar.h5", "time_data")
def _(ws):
    from acam.beamform import default_array

    with h5py.File(ws / "liar.h5", "w") as f:
        f.create_dataset("time_data", (10 ** 12 // 16, 16), np.float32)
        f.attrs["sample_freq"] = FS
        f["mic_positions"] = default_array().positions[:16]
    return ["beamform", "run", ws / "liar.h5", "-o", ws / "c.h5"] + FAST


@case("run: chunks never written", "sparse.h5", "chunks")
def _(ws):
    from acam.beamform import default_array

    with h5py.File(ws / "sparse.h5", "w") as f:
        d = f.create_dataset("time_data", (6144, 16), np.float32, chunks=(1024, 16))
        d[:1024] = 1.0
        f.attrs["sample_freq"] = FS
        f["mic_positions"] = default_array().positions[:16]
    return ["beamform", "run", ws / "sparse.h5", "-o", ws / "c.h5"] + FAST


def virtual_raw(ws):
    src = raw_file(ws / "src.h5")
    with h5py.File(src, "r") as s:
        shape, pos = s["time_data"].shape, s["mic_positions"][()]
    layout = h5py.VirtualLayout(shape, np.float32)
    layout[:] = h5py.VirtualSource("src.h5", "time_data", shape)
    with h5py.File(ws / "vds.h5", "w") as f:
        f.create_virtual_dataset("time_data", layout)
        f.attrs["sample_freq"] = FS
        f["mic_positions"] = pos
    return ws / "vds.h5", src


@case("run: virtual dataset whose source is missing", "src.h5", "does not exist")
def _(ws):
    vds, src = virtual_raw(ws)
    os.unlink(src)
    return ["beamform", "run", vds, "-o", ws / "c.h5"] + FAST


@case("run: output = virtual dataset source", "also an input", "src.h5")
def _(ws):
    vds, src = virtual_raw(ws)
    return ["beamform", "run", vds, "-o", src] + FAST


@case("run: output = external link target", "also an input", "data.h5")
def _(ws):
    raw_file(ws / "data.h5")
    with h5py.File(ws / "holder.h5", "w") as f:
        f["time_data"] = h5py.ExternalLink("data.h5", "/time_data")
        f["mic_positions"] = h5py.ExternalLink("data.h5", "/mic_positions")
        f.attrs["sample_freq"] = FS
    return ["beamform", "run", ws / "holder.h5", "-o", ws / "data.h5"] + FAST


@case("run: output = the recording", "also an input", "raw.h5")
def _(ws):
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / "raw.h5"] + FAST


@case("run: output = a hard link of the recording", "also an input")
def _(ws):
    raw_file(ws / "raw.h5")
    os.link(ws / "raw.h5", ws / "same.h5")
    return ["beamform", "run", ws / "raw.h5", "-o", ws / "same.h5"] + FAST


@case("run: output = a symlink to the recording", "also an input")
def _(ws):
    raw_file(ws / "raw.h5")
    os.symlink(ws / "raw.h5", ws / "link.h5")
    return ["beamform", "run", ws / "raw.h5", "-o", ws / "link.h5"] + FAST


@case("run: output = the --array file", "also an input", "arr.h5")
def _(ws):
    raw_file(ws / "arr.h5")
    return ["beamform", "run", raw_file(ws / "raw.h5"), "--array", ws / "arr.h5", "-o", ws / "arr.h5"] + FAST


@case("run: output is a FIFO", "not a regular file")
def _(ws):
    os.mkfifo(ws / "out.h5")
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / "out.h5"] + FAST


@case("run: output is a device like /dev/full", "not a regular file")
def _(ws):
    os.mknod(ws / "full", 0o666 | stat.S_IFCHR, os.makedev(1, 7))    # a copy: a regression replaces only it
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / "full"] + FAST


@case("run: output folder missing", "does not exist")
def _(ws):
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / "no" / "c.h5"] + FAST


@case("run: float16 overflow", "float16", "65504")
def _(ws):
    return ["beamform", "run", raw_file(ws / "raw.h5", dtype=np.int32, scale=2e9), "-o", ws / "c.h5",
            "--dtype", "float16"] + FAST


RUN_OPTIONS = {
    "bins 0": (["--bins", "0"], ["bins"]),
    "bins 10^9": (["--bins", "1000000000"], ["1000000000 bins", "more than"]),
    "rows 0": (["--rows", "0"], ["grid size"]),
    "rows 10^7": (["--rows", "10000000"], ["more than"]),
    "hfov 200": (["--hfov", "200"], ["hfov=200"]),
    "hfov nan": (["--hfov", "nan"], ["hfov=nan"]),
    "focus -1": (["--focus", "-1"], ["focus=-1"]),
    "speed of sound nan": (["--speed-of-sound", "nan"], ["speed_of_sound=nan"]),
    "window bogus": (["--window", "bogus"], ["bogus"]),
    "window tukey:5": (["--window", "tukey:5"], ["tukey"]),
    "tolerance 2": (["--tolerance", "2"], ["tolerance=2"]),
    "frame-rate 0": (["--frame-rate", "0"], ["frame_rate=0"]),
    "frame-rate nan": (["--frame-rate", "nan"], ["frame_rate=nan"]),
    "block-frames 0": (["--block-frames", "0"], ["block_frames=0"]),
    "threads 0": (["--threads", "0"], ["--threads 0"]),
    "workers 0": (["--workers", "0"], ["workers"]),
    "retries -1": (["--retries", "-1"], ["retries"]),
}
for _name, (_args, _words) in RUN_OPTIONS.items():
    def _setup(ws, args=_args):
        return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / "c.h5"] + FAST + args
    case(f"run: option {_name}", *_words)(_setup)


@case("run: frames-per-task 0 makes no folder", "frames_per_task=0")
def _(ws):
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", f"{ws / 'cubes'}/", "--frames-per-task", "0"] + FAST


@case("run: several recordings into a file", "is a file")
def _(ws):
    (ws / "out").write_text("x")
    return ["beamform", "run", raw_file(ws / "a.h5"), raw_file(ws / "b.h5"), "-o", ws / "out"] + FAST


@case("run: glob matching nothing", "no file matches")
def _(ws):
    return ["beamform", "run", str(ws / "*.nothing"), "-o", ws / "c.h5"] + FAST


ARRAY_FILES = {
    "junk xml": ("a.xml", b"<MicArray><pos x='a'/>", ["a.xml"]),
    "xml without positions": ("a.xml", b"<MicArray name='x'></MicArray>", ["a.xml"]),
    "csv with words": ("a.csv", b"x,y,z\n1,2,three\n", ["a.csv"]),
    "csv with 5 columns": ("a.csv", b"1,2,3,4,5\n", ["a.csv"]),
    "csv nan row": ("a.csv", b"nan,0,0\n", ["a.csv", "NaN"]),
    "npy pickled object": ("a.npy", None, ["a.npy"]),
    "npy huge header": ("a.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 3), }"
                        + b" " * 53 + b"\n", ["a.npy"]),
    "h5 without mic_positions": ("a.h5", "h5", ["a.h5", "mic_positions"]),
    "unknown extension": ("a.txt", b"1,2,3", ["a.txt", "extension"]),
}
for _name, (_fname, _content, _words) in ARRAY_FILES.items():
    def _setup(ws, fname=_fname, content=_content):
        p = ws / fname
        if content is None:
            np.save(p, np.array([object()], dtype=object), allow_pickle=True)
        elif content == "h5":
            with h5py.File(p, "w") as f:
                f["x"] = 1
        else:
            p.write_bytes(content)
        return ["beamform", "run", raw_file(ws / "raw.h5"), "--array", p, "-o", ws / "c.h5"] + FAST
    case(f"run: --array {_name}", *_words)(_setup)


@case("run: --array is a FIFO", "a.csv", "not a regular file")
def _(ws):
    os.mkfifo(ws / "a.csv")
    return ["beamform", "run", raw_file(ws / "raw.h5"), "--array", ws / "a.csv", "-o", ws / "c.h5"] + FAST


# ============================================================================== beamform show
def cube_case(change):
    def setup(ws):
        c = copy("cube", ws)
        with h5py.File(c, "a") as f:
            change(f)
        return c
    return setup


CUBE_CHANGES = {
    "string hfov": (set_attr("/", "hfov", "wide"), ["hfov"]),
    "string focus": (set_attr("/", "focus", "near"), ["focus"]),
    "1-D source_positions": (replace("source_positions", np.zeros(3)), ["source_positions"]),
    "no frames": (lambda f: (f.__delitem__("cube"), f.create_dataset("cube", (0, 4, 4, 8), np.float32)),
                  ["no frames"]),
    "frequencies of another length": (replace("frequencies", np.zeros(3)), ["frequencies"]),
    "look_points of another shape": (replace("look_points", np.zeros((2, 2, 3))), ["look_points"]),
    "string cube": (replace("cube", np.array([b"x"])), ["cube"]),
    "3-D cube": (replace("cube", np.zeros((2, 4, 4), np.float32)), ["cube"]),
    "no cube": (lambda f: f.__delitem__("cube"), ["cube"]),
    "nfft that does not fit": (set_attr("/", "nfft", 999.0), ["nfft"]),
}
for _name, (_change, _words) in CUBE_CHANGES.items():
    def _setup_show(ws, change=_change):
        return ["beamform", "show", cube_case(change)(ws), "-o", ws / "o.png"]

    def _setup_mfcc(ws, change=_change):
        return ["dataset", "mfcc", cube_case(change)(ws), "-o", ws / "m.h5", "--device", "cpu"]
    case(f"show: cube with {_name}", "cube.h5", *_words)(_setup_show)
    case(f"mfcc: cube with {_name}", "cube.h5", *_words)(_setup_mfcc)


@case("show: --range nan", "dynamic_range", "nan")
def _(ws):
    return ["beamform", "show", copy("cube", ws), "--range", "nan", "-o", ws / "o.png"]


@case("show: --range -5", "dynamic_range", "-5")
def _(ws):
    return ["beamform", "show", copy("cube", ws), "--range", "-5", "-o", ws / "o.png"]


@case("show: --band upside down", "--band")
def _(ws):
    return ["beamform", "show", copy("cube", ws), "--band", "6000:100", "-o", ws / "o.png"]


@case("show: --band outside the cube", "holds no bin")
def _(ws):
    return ["beamform", "show", copy("cube", ws), "--band", "90000:99000", "-o", ws / "o.png"]


@case("show: --frame outside", "frame 99")
def _(ws):
    return ["beamform", "show", copy("cube", ws), "--frame", "99", "-o", ws / "o.png"]


@case("show: output = the --video file", "also an input", "vid.h5")
def _(ws):
    raw_file(ws / "vid.h5")
    with h5py.File(ws / "vid.h5", "a") as f:
        f["video"] = np.zeros((2, 48, 64, 3), np.uint8)
    return ["beamform", "show", copy("cube", ws), "--video", ws / "vid.h5", "-o", ws / "vid.h5"]


@case("show: --video junk", "vid.h5")
def _(ws):
    (ws / "vid.h5").write_bytes(b"junk")
    return ["beamform", "show", copy("cube", ws), "--video", ws / "vid.h5", "-o", ws / "o.png"]


@case("show: --video with a 2-D video", "video")
def _(ws):
    raw_file(ws / "vid.h5")
    with h5py.File(ws / "vid.h5", "a") as f:
        f["video"] = np.zeros((2, 48), np.uint8)
    return ["beamform", "show", copy("cube", ws), "--video", ws / "vid.h5", "-o", ws / "o.png"]


@case("show: output = the cube", "also an input", "cube.h5")
def _(ws):
    c = copy("cube", ws)
    return ["beamform", "show", c, "-o", c]


@case("show: output FIFO", "not a regular file")
def _(ws):
    os.mkfifo(ws / "o.png")
    return ["beamform", "show", copy("cube", ws), "-o", ws / "o.png"]


@case("show: a recording instead of a cube", "raw.h5", "cube")
def _(ws):
    return ["beamform", "show", raw_file(ws / "raw.h5"), "-o", ws / "o.png"]


# ============================================================================ beamform simulate
SIM_OPTIONS = {
    "frame-rate 0": (["--frame-rate", "0"], ["frame_rate=0"]),
    "frame-rate nan": (["--frame-rate", "nan"], ["frame_rate=nan"]),
    "duration nan": (["--duration", "nan"], ["duration=nan"]),
    "duration -1": (["--duration", "-1"], ["duration=-1"]),
    "duration 10^9": (["--duration", "1e9"], ["more than"]),
    "sample-rate 0": (["--sample-rate", "0"], ["sample_freq=0"]),
    "sample-rate fractional": (["--sample-rate", "12288.5"], ["whole number"]),
    "source without position": (["--source", "noise"], ["'@X,Y,Z'"]),
    "source with 2 coordinates": (["--source", "noise@0,0"], ["three coordinates"]),
    "source amplitude nan": (["--source", "noise@0,0,2*nan"], ["amplitude"]),
    "source position inf": (["--source", "noise@inf,0,2"], ["position"]),
    "tone above Nyquist": (["--source", "tone:99999@0,0,2"], ["Nyquist"]),
    "unknown source kind": (["--source", "laser@0,0,2"], ["laser"]),
    "missing wav": (["--source", "wav:/nonexistent.wav@0,0,2"], ["nonexistent.wav", "does not exist"]),
    "room-dim negative": (["--room", "shoebox", "--room-dim", "-1,2,3"], ["room_dim"]),
    "rt60 0": (["--room", "shoebox", "--rt60", "0"], ["rt60=0"]),
    "absorption 2": (["--room", "shoebox", "--absorption", "2"], ["absorption=2"]),
    "max-order -1": (["--room", "shoebox", "--max-order", "-1"], ["max_order=-1"]),
    "max-order 10^6": (["--room", "shoebox", "--max-order", "1000000"], ["max_order=1000000"]),
    "seed -1": (["--seed", "-1"], ["seed=-1"]),
    "noise-snr nan": (["--noise-snr", "nan"], ["noise_snr=nan"]),
}
for _name, (_args, _words) in SIM_OPTIONS.items():
    def _setup(ws, args=_args):
        return ["beamform", "simulate", "-o", ws / "s.h5", "--duration", "0.2"] + args
    case(f"simulate: {_name}", *_words)(_setup)


@case("simulate: wav junk", "clap.wav")
def _(ws):
    (ws / "clap.wav").write_bytes(b"RIFF0000WAVEjunk")
    return ["beamform", "simulate", "-o", ws / "s.h5", "--duration", "0.2", "--source", f"wav:{ws / 'clap.wav'}@0,0,2"]


@case("simulate: wav is a FIFO", "clap.wav", "not a regular file")
def _(ws):
    os.mkfifo(ws / "clap.wav")
    return ["beamform", "simulate", "-o", ws / "s.h5", "--duration", "0.2", "--source", f"wav:{ws / 'clap.wav'}@0,0,2"]


@case("simulate: output = the --array file", "also an input", "rec.h5")
def _(ws):
    return ["beamform", "simulate", "--array", raw_file(ws / "rec.h5"), "-o", ws / "rec.h5", "--duration", "0.2"]


@case("simulate: output = the wav file", "also an input", "clap.wav")
def _(ws):
    import scipy.io.wavfile

    scipy.io.wavfile.write(ws / "clap.wav", 12288, np.zeros(1000, np.int16) + 5)
    return ["beamform", "simulate", "-o", ws / "clap.wav", "--duration", "0.2",
            "--source", f"wav:{ws / 'clap.wav'}@0,0,2"]


# ================================================================================ geometry
GEO_MAKE = {
    "spiral clearance 1.0": (["spiral", "--clearance", "1.0"], ["clearance=1.0"]),
    "sunflower clearance 0.3": (["sunflower", "--clearance", "0.3"], ["clearance=0.3"]),
    "spiral arms 0": (["spiral", "--arms", "0"], ["arms=0"]),
    "spiral arms 3 of 128": (["spiral", "--arms", "3"], ["arms=3"]),
    "grid mics 0": (["grid", "--mics", "0"], ["n_mics=0"]),
    "grid mics 10^9": (["grid", "--mics", "1000000000"], ["n_mics=1000000000"]),
    "random aperture nan": (["random", "--aperture", "nan"], ["aperture=nan"]),
    "random spacing impossible": (["random", "--min-spacing", "1", "--mics", "16"], ["could not place"]),
    "optimised iterations -1": (["optimised", "--iterations", "-1", "--mics", "16"], ["iterations=-1"]),
    "optimised band upside down": (["optimised", "--band", "6000:500", "--mics", "16"], ["band"]),
}
for _name, (_args, _words) in GEO_MAKE.items():
    def _setup(ws, args=_args):
        return ["beamform", "geometry", "make"] + args + ["-o", ws / "g.xml"]
    case(f"geometry make: {_name}", *_words)(_setup)


@case("geometry make: unknown output extension", "g.txt")
def _(ws):
    return ["beamform", "geometry", "make", "grid", "--mics", "16", "-o", ws / "g.txt"]


@case("geometry make: output is a FIFO", "not a regular file")
def _(ws):
    os.mkfifo(ws / "g.xml")
    return ["beamform", "geometry", "make", "grid", "--mics", "16", "-o", ws / "g.xml"]


def grid_xml(ws):
    from acam.beamform.geometry import uniform_grid

    uniform_grid(16).save(ws / "g.xml")
    return ws / "g.xml"


GEO_REPORT = {
    "freqs -1000,0": (["--freqs", "-1000,0"], ["freqs="]),
    "freqs abc": (["--freqs", "abc"], ["--freqs"]),
    "freqs nan": (["--freqs", "nan"], ["freqs=[nan]"]),
    "freqs 100 of them": (["--freqs", ",".join(["1000"] * 100)], ["freqs="]),
    "band upside down": (["--band", "6000:500"], ["band="]),
    "band of 10^9 steps": (["--band", "1:1e11"], ["band="]),
    "hfov 0": (["--hfov", "0"], ["hfov=0"]),
}
for _name, (_args, _words) in GEO_REPORT.items():
    def _setup(ws, args=_args):
        return ["beamform", "geometry", "report", grid_xml(ws)] + args + ["-o", ws / "r.png"]
    case(f"geometry report: {_name}", *_words)(_setup)


@case("geometry report: output = the layout", "also an input", "g.xml")
def _(ws):
    g = grid_xml(ws)
    return ["beamform", "geometry", "report", g, "-o", g, "--freqs", "2000"]


@case("geometry compare: output = the second layout", "also an input", "h.xml")
def _(ws):
    g = grid_xml(ws)
    shutil.copy(g, ws / "h.xml")
    return ["beamform", "geometry", "compare", g, ws / "h.xml", "-o", ws / "h.xml", "--freqs", "2000"]


@case("geometry report: single frequency draws", expect="succeed",
      check=lambda ws, out: (ws / "r.png").stat().st_size > 0 or (_ for _ in ()).throw(AssertionError("no png")))
def _(ws):
    return ["beamform", "geometry", "report", grid_xml(ws), "--freqs", "2000", "-o", ws / "r.png"]


def _csv_check(n):
    def check(ws, out):
        from acam.beamform import ArrayGeometry

        assert ArrayGeometry.from_file(ws / "a.csv").n_mics == n, "a data row was taken for a header"
    return check


for _first in (".5,0,0", "+0.1,0.2,0", "-.25,0.1,0", "1e-2,0,0"):
    def _setup(ws, first=_first):
        (ws / "a.csv").write_text(first + "\n0.1,0.1,0\n0.2,0.1,0\n")
        return ["beamform", "geometry", "report", ws / "a.csv", "--freqs", "2000"]
    case(f"geometry report: csv first row {_first} is data", expect="succeed", check=_csv_check(3))(_setup)


# ================================================================================ dataset
MANIFESTS = {
    "escape to /etc/passwd": (lambda s: s.update(file="/etc/passwd"), ["/etc/passwd", "outside"]),
    "escape with ..": (lambda s: s.update(file="../../../etc/passwd"), ["outside"]),
    "symlink escaping": ("symlink", ["outside"]),
    "action as text": (lambda s: s.update(action="x"), ["action"]),
    "action 99": (lambda s: s.update(action=99), ["action=99"]),
    "scenario 7": (lambda s: s.update(scenario=7), ["scenario=7"]),
    "split holdout": (lambda s: s.update(split="holdout"), ["holdout"]),
    "n_frames -3": (lambda s: s.update(n_frames=-3), ["n_frames=-3"]),
    "missing file field": (lambda s: s.pop("file"), ["'file'"]),
    "name twice": ("twice", ["twice"]),
}
for _name, (_change, _words) in MANIFESTS.items():
    def _setup(ws, change=_change):
        d = copy("data", ws)
        m = json.loads((d / "manifest.json").read_text())
        if change == "symlink":
            os.symlink("/etc/passwd", d / "sequences" / "evil.h5")
            m["sequences"][0]["file"] = "sequences/evil.h5"
        elif change == "twice":
            m["sequences"][1]["name"] = m["sequences"][0]["name"]
        else:
            change(m["sequences"][0])
        (d / "manifest.json").write_text(json.dumps(m))
        return ["dataset", "info", d]
    case(f"info: manifest {_name}", "manifest.json", *_words)(_setup)


MANIFEST_LAYOUTS = {
    "sequences not a list": ({"sequences": {"a": 1}}, ["'sequences' list"]),
    "a JSON list": ([1, 2], ["JSON object"]),
    "entry without fields": ({"sequences": [{"name": "a"}]}, ["field 'file'"]),
    "not JSON": (b"{not json", ["not a valid manifest"]),
    "binary": (b"\xff\xfe\x00junk", ["not a valid manifest"]),
    "frame_rate text": ({"sequences": [], "frame_rate": "fast"}, ["frame_rate"]),
    "deeply nested": (b"[" * 100000 + b"]" * 100000, ["manifest"]),
}
for _name, (_content, _words) in MANIFEST_LAYOUTS.items():
    def _setup(ws, content=_content):
        d = ws / "d"
        os.makedirs(d)
        (d / "manifest.json").write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        return ["dataset", "info", d]
    case(f"info: manifest {_name}", *_words)(_setup)


@case("info: manifest is a FIFO", "manifest.json", "not a regular file")
def _(ws):
    os.makedirs(ws / "d")
    os.mkfifo(ws / "d" / "manifest.json")
    return ["dataset", "info", ws / "d"]


@case("info: truncated sequence not counted", expect="succeed",
      check=lambda ws, out: None if "13 of 14 sequences built" in out else (_ for _ in ()).throw(AssertionError(out)))
def _(ws):
    d = copy("data", ws)
    f = sorted((d / "sequences").iterdir())[0]
    blob = f.read_bytes()
    f.write_bytes(blob[: len(blob) // 3])
    return ["dataset", "info", d]


@case("build: --limit -1", "limit=-1")
def _(ws):
    return ["dataset", "build", "-o", ws / "d", "--limit", "-1", "--device", "cpu"]


@case("build: into a folder holding another dataset", "holds a different dataset")
def _(ws):
    return ["dataset", "build", "-o", copy("data", ws), "--device", "cpu", "--limit", "0"]


@case("build: --workers 0", "workers")
def _(ws):
    return ["dataset", "build", "-o", ws / "d", "--workers", "0", "--device", "cpu"]


@case("mfcc: NaN cube", "NaN", "cube.h5")
def _(ws):
    c = copy("cube", ws)
    with h5py.File(c, "a") as f:
        f["cube"][1, 0, 0, 0] = np.nan
    return ["dataset", "mfcc", c, "-o", ws / "m.h5", "--device", "cpu"]


@case("mfcc: infinite cube", "infinite", "cube.h5")
def _(ws):
    c = copy("cube", ws)
    with h5py.File(c, "a") as f:
        f["cube"][0, 1, 1, 1] = np.inf
    return ["dataset", "mfcc", c, "-o", ws / "m.h5", "--device", "cpu"]


@case("mfcc: cube without attributes", "cube.h5", "nfft")
def _(ws):
    c = copy("cube", ws)
    with h5py.File(c, "a") as f:
        for k in list(f.attrs):
            del f.attrs[k]
    return ["dataset", "mfcc", c, "-o", ws / "m.h5", "--device", "cpu"]


@case("mfcc: output = the cube", "also an input", "cube.h5")
def _(ws):
    c = copy("cube", ws)
    return ["dataset", "mfcc", c, "-o", c, "--device", "cpu"]


@case("mfcc: output is a FIFO", "not a regular file")
def _(ws):
    os.mkfifo(ws / "m.h5")
    return ["dataset", "mfcc", copy("cube", ws), "-o", ws / "m.h5", "--device", "cpu"]


# ------------------------------------------------------------------------------- import-tfrecord
TF_RECORDS = {
    "action -1": ({"action": ("int64", [-1])}, None, ["action=-1"]),
    "action 99": ({"action": ("int64", [99])}, None, ["action=99"]),
    "location -5": ({"location": ("int64", [-5])}, None, ["location=-5"]),
    "location 3": ({"location": ("int64", [3])}, None, ["location=3"]),
    "subject -1": ({"subject": ("int64", [-1])}, None, ["subject=-1"]),
    "mics 0": ({"audio_data/mics": ("int64", [0])}, None, ["audio_data/mics=0"]),
    "negative height": ({"video/height": ("int64", [-4])}, None, ["video/height=-4"]),
    "huge width": ({"audio_image/width": ("int64", [10 ** 9])}, None, ["audio_image/width"]),
    "depth 4 video": ({"video/depth": ("int64", [4])}, None, ["video/depth"]),
    "missing action": ({"action": ("float", [1.0])}, None, ["action"]),
    "odd feature bytes": (None, {"audio/image": [("bytes", [b"abc"])]}, ["audio/image", "3 bytes"]),
    "two values in a frame": (None, {"audio/data": [("bytes", [b"a", b"b"])]}, ["audio/data"]),
    "video without frames": (None, "drop-video", ["video/image", "no frames"]),
    "zero frames": ("zero", None, ["no frames"]),
    "frame counts differ": (None, {"video/image": [("bytes", [np.zeros((4, 4, 3), "u1").tobytes()])] * 2},
                            ["different lengths"]),
}
for _name, (_ctx, _lists, _words) in TF_RECORDS.items():
    def _setup(ws, ctx=_ctx, lists=_lists):
        if ctx == "zero":
            rec = tf_record(frames=0)
        elif lists == "drop-video":
            rec = tf_record(None, {"video/image": []})
        else:
            rec = tf_record(ctx, lists)
        return ["dataset", "import-tfrecord", tf_dir(ws, [rec]), "-o", ws / "out"]
    case(f"import-tfrecord: {_name}", "a.tfrecord", *_words)(_setup)


TF_BYTES = {
    "length 10^12 plain": (length_header(10 ** 12) + b"x" * 100, False, ["length 1000000000000"]),
    "length 2^63 plain": (length_header(2 ** 63) + b"x" * 100, False, [f"length {2 ** 63}"]),
    "length 10^12 gzip": (length_header(10 ** 12) + b"x" * 100, True, ["length 1000000000000"]),
    "length 2^64-1 gzip": (length_header(2 ** 64 - 1) + b"x", True, ["length"]),
    "corrupt length CRC": (struct.pack("<QI", 10, 0) + b"x" * 20, False, ["CRC"]),
    "truncated header": (b"\x01\x02\x03", False, ["truncated header"]),
    "truncated data": (length_header(50) + b"x" * 10, False, ["length 50"]),
    "junk gzip": (b"\x1f\x8b" + b"\x00" * 30, None, ["cannot read"]),
    "varint overflow": ("varint", False, ["10 bytes"]),
    "data CRC wrong": ("datacrc", False, ["CRC"]),
}
for _name, (_bytes, _gz, _words) in TF_BYTES.items():
    def _setup(ws, content=_bytes, gz=_gz):
        from acam.dataset.importers import _key, _masked_crc

        if content == "varint":
            payload = _key(1, 2) + b"\xff" * 11 + b"\x01"
            return ["dataset", "import-tfrecord", tf_dir(ws, [payload], compress=False), "-o", ws / "out"]
        if content == "datacrc":
            content = length_header(3) + b"abc" + struct.pack("<I", _masked_crc(b"abd"))
        if gz is None:
            os.makedirs(ws / "tf")
            (ws / "tf" / "a.tfrecord").write_bytes(content)
            return ["dataset", "import-tfrecord", ws / "tf", "-o", ws / "out"]
        return ["dataset", "import-tfrecord", tf_dir(ws, raw_bytes=content, compress=gz), "-o", ws / "out"]
    case(f"import-tfrecord: {_name}", "a.tfrecord", *_words)(_setup)


@case("import-tfrecord: FIFO named .tfrecord", "a.tfrecord", "not a regular file")
def _(ws):
    os.makedirs(ws / "tf")
    os.mkfifo(ws / "tf" / "a.tfrecord")
    return ["dataset", "import-tfrecord", ws / "tf", "-o", ws / "out"]


@case("import-tfrecord: into a folder holding another dataset", "holds another dataset")
def _(ws):
    return ["dataset", "import-tfrecord", tf_dir(ws, [tf_record()]), "-o", copy("data", ws)]


@case("import-tfrecord: output is a file", "is a file")
def _(ws):
    (ws / "out").write_text("x")
    return ["dataset", "import-tfrecord", tf_dir(ws, [tf_record()]), "-o", ws / "out"]


@case("import-tfrecord: no records", "no .tfrecord files")
def _(ws):
    os.makedirs(ws / "tf")
    return ["dataset", "import-tfrecord", ws / "tf", "-o", ws / "out"]


@case("import-tfrecord: frame shapes differ within a sequence", "frame shapes differ")
def _(ws):
    other = tf_record({"video/height": ("int64", [2])}, {"video/image": [("bytes", [np.zeros((2, 4, 3), "u1").tobytes()])]})
    return ["dataset", "import-tfrecord", tf_dir(ws, [tf_record(), other]), "-o", ws / "out"]


# ------------------------------------------------------------------------------------ import-dc
def dc_dir(ws, n=2, size=None):
    d = ws / "dc"
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        if size is None:
            np.arange(128 * 1024, dtype="<i4").tofile(d / f"f{i + 1}.dc")
        else:
            (d / f"f{i + 1}.dc").write_bytes(b"\x00" * size)
    return d


@case("import-dc: output = a frame file", "f2.dc")
def _(ws):
    d = dc_dir(ws)
    return ["dataset", "import-dc", d, "-o", d / "f2.dc"]


@case("import-dc: output = the --array file", "also an input", "pos.h5")
def _(ws):
    raw_file(ws / "pos.h5", ch=128)
    return ["dataset", "import-dc", dc_dir(ws), "--array", ws / "pos.h5", "-o", ws / "pos.h5"]


@case("import-dc: a frame of the wrong size", "f1.dc", "bytes")
def _(ws):
    return ["dataset", "import-dc", dc_dir(ws, 1, size=1000), "-o", ws / "r.h5"]


@case("import-dc: a FIFO frame", "f3.dc", "not a regular file")
def _(ws):
    d = dc_dir(ws)
    os.mkfifo(d / "f3.dc")
    return ["dataset", "import-dc", d, "-o", ws / "r.h5"]


@case("import-dc: no frames", "no .dc files")
def _(ws):
    os.makedirs(ws / "dc")
    return ["dataset", "import-dc", ws / "dc", "-o", ws / "r.h5"]


@case("import-dc: bad mic 200", "200")
def _(ws):
    return ["dataset", "import-dc", dc_dir(ws), "--bad-mics", "200", "-o", ws / "r.h5"]


@case("import-dc: bad mics words", "'a,b'")
def _(ws):
    return ["dataset", "import-dc", dc_dir(ws), "--bad-mics", "a,b", "-o", ws / "r.h5"]


@case("import-dc: array of 16 mics", "128 channels", "16 microphones")
def _(ws):
    return ["dataset", "import-dc", dc_dir(ws), "--array", raw_file(ws / "pos.h5"), "-o", ws / "r.h5"]


# ==================================================================================== learn
def run_with(ws, best_writer):
    d = ws / "run"
    os.makedirs(d)
    best_writer(d / "best.pt", ws)
    return d


def payload_writer(p, ws):
    import torch

    torch.save({"model": Payload(ws / "pwned")}, p)


def no_marker(ws, out):
    assert not (ws / "pwned").exists(), "the payload ran"


CKPT_KINDS = {
    "pickle payload": (payload_writer, ["refused unread"]),
    "empty": (lambda p, ws: p.write_bytes(b""), []),
    "junk": (lambda p, ws: p.write_bytes(b"junk" * 100), []),
    "truncated": ("truncated", ["truncated"]),
    "a list": (lambda p, ws: __import__("torch").save([1, 2], p), ["list"]),
    "wrong keys": (lambda p, ws: __import__("torch").save({"model": {}, "epoch": 1}, p), ["training checkpoint"]),
    "unknown model": ("unknown model", ["not one of"]),
    "huge option": ("huge option", ["options"]),
    "numpy inside": (lambda p, ws: __import__("torch").save({"x": np.zeros(3)}, p), ["refused unread"]),
}


def _ckpt_writer(kind):
    writer = CKPT_KINDS[kind][0]
    if callable(writer):
        return writer

    def w(p, ws):
        import torch

        shutil.copy(base("run") / "best.pt", p)
        if writer == "truncated":
            blob = p.read_bytes()
            p.write_bytes(blob[: len(blob) // 2])
            return
        ck = torch.load(p, weights_only=True)
        if writer == "unknown model":
            ck["model_config"]["name"] = "gpt5"
        else:
            ck["model_config"]["options"] = {"height": 10 ** 9}
        torch.save(ck, p)
    return w


for _kind, (_w, _words) in CKPT_KINDS.items():
    def _eval(ws, kind=_kind):
        return ["learn", "evaluate", run_with(ws, _ckpt_writer(kind)), "--device", "cpu", "--data", copy("data", ws)]

    def _distill(ws, kind=_kind):
        return ["learn", "distill", "--teacher", run_with(ws, _ckpt_writer(kind)), "--student", "hearnet",
                "--data", copy("data", ws), "-o", ws / "s", "--device", "cpu", "--epochs", "1", "--no-progress"]

    def _transfer(ws, kind=_kind):
        return ["learn", "transfer", run_with(ws, _ckpt_writer(kind)), "--data", ws]
    case(f"evaluate: checkpoint {_kind}", "best.pt", *_words, check=no_marker)(_eval)
    if _kind in ("pickle payload", "truncated", "wrong keys"):
        case(f"distill: teacher checkpoint {_kind}", "best.pt", *_words, check=no_marker)(_distill)
        case(f"transfer: checkpoint {_kind}", "best.pt", *_words, check=no_marker)(_transfer)


@case("train: resume from a payload last.pt", "last.pt", "refused unread", check=no_marker)
def _(ws):
    import torch

    os.makedirs(ws / "r")
    torch.save({"optimizer": Payload(ws / "pwned")}, ws / "r" / "last.pt")
    return ["learn", "train", "--model", "dualcamnet", "--data", copy("data", ws), "-o", ws / "r", "--epochs", "1",
            "--crops", "1", "--device", "cpu", "--no-progress"]


@case("train: --init payload", "init.pt", check=no_marker)
def _(ws):
    import torch

    torch.save({"model": Payload(ws / "pwned")}, ws / "init.pt")
    return ["learn", "train", "--model", "dualcamnet", "--init", ws / "init.pt", "--data", copy("data", ws),
            "-o", ws / "r", "--epochs", "1", "--device", "cpu", "--no-progress"]


@case("train: --init junk", "init.pt")
def _(ws):
    (ws / "init.pt").write_bytes(b"junk")
    return ["learn", "train", "--model", "dualcamnet", "--init", ws / "init.pt", "--data", copy("data", ws),
            "-o", ws / "r", "--epochs", "1", "--device", "cpu", "--no-progress"]


TRAIN_OPTIONS = {
    "epochs 0": (["--epochs", "0"], ["epochs=0"]),
    "crops 0": (["--crops", "0"], ["crops_per_sequence=0"]),
    "batch-size 0": (["--batch-size", "0"], ["batch_size=0"]),
    "lr nan": (["--lr", "nan"], ["lr=nan"]),
    "lr -1": (["--lr", "-1"], ["lr=-1"]),
    "lr 0": (["--lr", "0"], ["lr=0"]),
    "seed -1": (["--seed", "-1"], ["seed=-1"]),
    "train-on 4": (["--train-on", "4"], ["'4'", "scenario"]),
}
for _name, (_args, _words) in TRAIN_OPTIONS.items():
    def _setup(ws, args=_args):
        return ["learn", "train", "--model", "dualcamnet", "--data", copy("data", ws), "-o", ws / "r",
                "--device", "cpu", "--no-progress"] + args
    case(f"train: {_name}", *_words)(_setup)


@case("train: dataset folder without manifest", "not a dataset folder")
def _(ws):
    os.makedirs(ws / "d")
    return ["learn", "train", "--model", "dualcamnet", "--data", ws / "d", "-o", ws / "r", "--device", "cpu"]


@case("distill: teacher of another class count", "10", "14")
def _(ws):
    t = fake_run(ws / "t", base("data"), n_classes=10)
    return ["learn", "distill", "--teacher", t, "--student", "hearnet", "--data", copy("data", ws), "-o", ws / "s",
            "--epochs", "1", "--crops", "1", "--device", "cpu", "--no-progress"]


@case("distill: lambda 2", "--lambda")
def _(ws):
    return ["learn", "distill", "--teacher", copy("run", ws), "--student", "hearnet", "--lambda", "2", "-o", ws / "s"]


@case("distill: temperature nan", "temperature=nan")
def _(ws):
    return ["learn", "distill", "--teacher", copy("run", ws), "--student", "hearnet", "--temperature", "nan",
            "-o", ws / "s"]


@case("evaluate: dataset of another MFCC grid", "18x24x12", "36x48x12")
def _(ws):
    other = fake_dataset(ws / "small-grid", grid=(18, 24, 12))
    return ["learn", "evaluate", copy("run", ws), "--data", other, "--device", "cpu"]


@case("evaluate: run folder without checkpoint", "no best.pt")
def _(ws):
    os.makedirs(ws / "run")
    return ["learn", "evaluate", ws / "run", "--device", "cpu"]


REPRO = {
    "seeds a": (["--seeds", "a"], ["seeds", "'a'"]),
    "seeds -1": (["--seeds", "-1"], ["seeds"]),
    "teachers bogus": (["--teachers", "bogus"], ["bogus"]),
    "students dualcamnet": (["--students", "dualcamnet"], ["dualcamnet"]),
    "no models": (["--teachers", "", "--students", ""], ["nothing to train"]),
    "epochs 0": (["--epochs", "0"], ["epochs=0"]),
    "train-sets 9": (["--train-sets", "9"], ["train sets"]),
}
for _name, (_args, _words) in REPRO.items():
    def _setup(ws, args=_args):
        return ["learn", "reproduce", "--data", copy("data", ws), "-o", ws / "r", "--device", "cpu"] + args
    case(f"reproduce: {_name}", *_words)(_setup)


@case("transfer: --seconds 0", "seconds=0")
def _(ws):
    return ["learn", "transfer", copy("student", ws), "--data", ws, "--seconds", "0"]


@case("transfer: a teacher run", "transfer takes a student")
def _(ws):
    return ["learn", "transfer", copy("run", ws), "--data", ws]


@case("transfer: CSV row without label", "labels.csv", "no label")
def _(ws):
    (ws / "labels.csv").write_text("file,label\na.wav\n")
    return ["learn", "transfer", copy("student", ws), "--data", ws / "labels.csv"]


@case("transfer: WAV that is junk", "x.wav")
def _(ws):
    os.makedirs(ws / "lab" / "dog")
    (ws / "lab" / "dog" / "x.wav").write_bytes(b"RIFF1234WAVEfmt junk")
    return ["learn", "transfer", copy("student", ws), "--data", ws / "lab"]


# ==================================================================================== bench
BENCH_DOCS = {
    "figures a list": ({"figures": [], "machine": {}}, ["not a benchmark JSON file"]),
    "median text": ({"figures": {"x": {"median": "fast"}}, "machine": {}}, ["'x'", "median"]),
    "sweep rows text": ({"figures": {}, "machine": {}, "sweeps": {"bins": {"rows": "x"}}}, ["unexpected"]),
    "scaling a number": ({"figures": {}, "machine": {}, "scaling": 3}, ["unexpected"]),
    "peers wrong": ({"figures": {}, "machine": {}, "peers": {"acam_seconds_per_frame": "x"}}, ["unexpected"]),
    "a list": ([1, 2], ["not a benchmark JSON file"]),
    "not JSON": (b"{{{", ["not a benchmark JSON file"]),
}
for _name, (_doc, _words) in BENCH_DOCS.items():
    def _setup(ws, doc=_doc):
        (ws / "b.json").write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
        return ["bench", "report", ws / "b.json", "-o", ws / "r.md"]
    case(f"bench report: {_name}", "b.json", *_words)(_setup)


@case("bench report: output = input", "also an input", "b.json")
def _(ws):
    (ws / "b.json").write_text(json.dumps({"figures": {}, "machine": {}}))
    return ["bench", "report", ws / "b.json", "-o", ws / "b.json"]


@case("bench report: FIFO input", "b.json", "not a regular file")
def _(ws):
    os.mkfifo(ws / "b.json")
    return ["bench", "report", ws / "b.json"]


BENCH_OPTIONS = {
    "beamform --sweep bogus": (["beamform", "--sweep", "bogus"], ["bogus", "sweeps"]),
    "beamform --tolerances a": (["beamform", "--tolerances", "a"], ["--tolerances"]),
    "beamform --tolerances 5": (["beamform", "--tolerances", "5"], ["tolerance=5"]),
    "beamform --seconds -1": (["beamform", "--seconds", "-1"], ["seconds=-1"]),
    "scale --workers a,b": (["scale", "--workers", "a,b"], ["--workers", "'a,b'"]),
    "scale --workers 0": (["scale", "--workers", "0"], ["workers"]),
    "scale --files 0": (["scale", "--files", "0"], ["files=0"]),
    "scale --seconds 0": (["scale", "--seconds", "0"], ["seconds=0"]),
}
for _name, (_args, _words) in BENCH_OPTIONS.items():
    case(f"bench: {_name}", *_words)(lambda ws, args=_args: ["bench"] + args)


@case("bench beamform: output is a folder", "folder")
def _(ws):
    return ["bench", "beamform", "-o", ws]


# ============================================================ orphans, umask, full disks
def _parts_gone(ws, out):
    left = [n for n in os.listdir(ws) if n.endswith(".part")]
    assert not left, f"stale parts left: {left}"


@case("run: stale part of a dead writer removed", expect="succeed", check=_parts_gone)
def _(ws):
    from acam.core.safeio import _HOST

    dead = subprocess.Popen(["true"])
    dead.wait()
    (ws / f".c.h5.{_HOST}.{dead.pid}.deadbeef.part").write_bytes(b"x" * 10000)
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / "c.h5"] + FAST


def _umask_check(ws, out):
    mode = (ws / "c.h5").stat().st_mode & 0o777
    assert mode == 0o644, oct(mode)


@case("run: output follows umask 022", expect="succeed", check=_umask_check)
def _(ws):
    os.umask(0o022)
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / "c.h5"] + FAST


@case("run: file-size limit (full disk)", "big.h5", "file too large")
def _(ws):
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / "big.h5", "--bins", "64", "--no-progress",
            "--device", "cpu", ("FSIZE", 100_000)]


@case("mfcc: file-size limit (full disk)", "m.h5", "file too large")
def _(ws):
    c = copy("cube", ws)
    return ["dataset", "mfcc", c, "-o", ws / "m.h5", "--device", "cpu", ("FSIZE", 4000)]


@case("geometry make: file-size limit", "g.xml", "file too large")
def _(ws):
    return ["beamform", "geometry", "make", "grid", "--mics", "128", "-o", ws / "g.xml", ("FSIZE", 1000)]


@case("import-dc: file-size limit", "r.h5", "file too large")
def _(ws):
    return ["dataset", "import-dc", dc_dir(ws, 4), "-o", ws / "r.h5", ("FSIZE", 200_000)]



# ===================================================== second audit: input trees, sizes, storage, NaN
@case("learn train: output is the dataset it reads", "dataset folder")
def _(ws):
    d = copy("data", ws)
    return ["learn", "train", "--model", "dualcamnet", "--data", d, "-o", d, "--epochs", "1", "--crops", "1",
            "--device", "cpu", "--no-progress"]


@case("learn train: output inside the dataset it reads", "dataset folder")
def _(ws):
    d = copy("data", ws)
    return ["learn", "train", "--model", "dualcamnet", "--data", d, "-o", d / "sequences" / "r",
            "--epochs", "1", "--crops", "1", "--device", "cpu", "--no-progress"]


@case("learn distill: output is the teacher", "teacher run folder")
def _(ws):
    d = copy("data", ws)
    t = fake_run(ws / "t", d)
    return ["learn", "distill", "--teacher", t, "--student", "hearnet", "--data", d, "-o", t, "--epochs", "1",
            "--crops", "1", "--device", "cpu", "--no-progress"]


@case("import-tfrecord: output inside its source folder", "source folder")
def _(ws):
    d = tf_dir(ws, [tf_record()])
    (d / "manifest.json").write_text("notes")
    return ["dataset", "import-tfrecord", d, "-o", d]


@case("dataset info: a run folder", "training run folder")
def _(ws):
    return ["dataset", "info", fake_run(ws / "r1", copy("data", ws))]


@case("dataset build: a folder of sequences without manifest", "no manifest.json")
def _(ws):
    os.makedirs(ws / "out" / "sequences")
    (ws / "out" / "sequences" / "a00_s1_p00_r0.h5").write_bytes(b"mine")
    return ["dataset", "build", "-o", ws / "out", "--no-progress", "--device", "cpu"]


@case("dataset build: --retries -5 makes no folder", "retries")
def _(ws):
    return ["dataset", "build", "-o", ws / "new", "--retries", "-5", "--no-progress"]


@case("show: -o X --animate X", "give two paths")
def _(ws):
    return ["beamform", "show", copy("cube", ws), "-o", ws / "x.gif", "--animate", ws / "x.gif"]


@case("simulate: sample rate 1e300", "sample_freq")
def _(ws):
    return ["beamform", "simulate", "-o", ws / "o.h5", "--sample-rate", "1e300"]


@case("simulate: source 1e6 m away", "1000 m")
def _(ws):
    return ["beamform", "simulate", "-o", ws / "o.h5", "--source", "noise@1e6,0,2"]


@case("simulate: room too large for its RT60", "rt60")
def _(ws):
    return ["beamform", "simulate", "-o", ws / "o.h5", "--room", "shoebox", "--room-dim", "900,900,900", "--rt60",
            "0.05", "--duration", "0.1"]


@case("geometry report: 90 MB XML", "big.xml", "bytes")
def _(ws):
    with open(ws / "big.xml", "wb") as f:
        f.write(b'<?xml version="1.0"?>\n<MicArray name="x">\n')
        f.truncate(90 * 10 ** 6)
    return ["beamform", "geometry", "report", ws / "big.xml", "--freqs", "1000,2000"]


def _virtual_recording(ws, n_rows: int, mapped: slice) -> list:
    """``beamform run`` on a recording whose time_data is a virtual dataset of ``n_rows`` rows,
    ``mapped`` of them taken from a real 6144-sample recording."""
    src = raw_file(ws / "src.h5")
    layout = h5py.VirtualLayout((n_rows, 16), np.float32)
    layout[mapped] = h5py.VirtualSource("src.h5", "time_data", (6144, 16))[mapped]
    with h5py.File(ws / "vds.h5", "w") as f:
        f.create_virtual_dataset("time_data", layout)
        f["time_data"].attrs["sample_freq"] = FS
        with h5py.File(src, "r") as s:
            f["mic_positions"] = s["mic_positions"][()]
    return ["beamform", "run", ws / "vds.h5", "-o", ws / "c.h5"] + FAST


@case("run: virtual dataset mapping half its rows", "vds.h5", "maps")
def _(ws):
    return _virtual_recording(ws, 6144, slice(0, 3000))


@case("run: virtual dataset of a billion rows", "vds.h5", "maps")
def _(ws):
    return _virtual_recording(ws, 10 ** 9, slice(0, 6144))


@case("import-tfrecord: inf in audio/image", "a.tfrecord", "infinite")
def _(ws):
    from acam.dataset.importers import encode_sequence_example, parse_sequence_example

    img = np.zeros((36, 48, 12), "<f4")
    img[0, 0, 0] = np.inf
    ctx, lists = parse_sequence_example(tf_record())
    lists = {"audio/image": [("bytes", [img.tobytes()])], "audio/data": [("bytes", [np.zeros((1, 1024), "<i4").tobytes()])],
             "video/image": [("bytes", [np.zeros((4, 4, 3), "u1").tobytes()])]}
    ctx = {k: ("int64", [int(v[1][0])]) for k, v in ctx.items()}
    return ["dataset", "import-tfrecord", tf_dir(ws, [encode_sequence_example(ctx, lists)]), "-o", ws / "out"]


@case("import-tfrecord: a record file without records", "no record")
def _(ws):
    return ["dataset", "import-tfrecord", tf_dir(ws, []), "-o", ws / "out"]


@case("learn train: NaN crops", "NaN")
def _(ws):
    d = fake_dataset(ws / "data")
    with h5py.File(d / "sequences" / "a00_s1_p00_r0.h5", "a") as f:
        f["mfcc"][0, 0, 0, 0] = np.nan
    return ["learn", "train", "--model", "dualcamnet", "--data", d, "-o", ws / "r", "--epochs", "1",
            "--crops", "3", "--device", "cpu", "--no-progress"]


@case("show: negative power", "negative")
def _(ws):
    c = copy("cube", ws)
    with h5py.File(c, "a") as f:
        f["cube"][...] = -f["cube"][()]
    return ["beamform", "show", c, "-o", ws / "p.png"]


@case("dataset info: manifest with a 5000-digit number", "manifest.json")
def _(ws):
    d = copy("data", ws)
    text = (d / "manifest.json").read_text()
    (d / "manifest.json").write_text(text.replace('"n_frames": 12', '"n_frames": ' + "9" * 5000, 1))
    return ["dataset", "info", d]


@case("dataset info: manifest naming two actions", "actions")
def _(ws):
    d = copy("data", ws)
    m = json.loads((d / "manifest.json").read_text())
    m["actions"] = ["clap", "knock"]
    (d / "manifest.json").write_text(json.dumps(m))
    return ["dataset", "info", d]


@case("run: a zip named .npy as the array", "arr.npy")
def _(ws):
    import zipfile

    with zipfile.ZipFile(ws / "arr.npy", "w") as z:
        z.writestr("x.npy", b"\x93NUMPY")
    return ["beamform", "run", raw_file(ws / "raw.h5"), "--array", ws / "arr.npy", "-o", ws / "c.h5"] + FAST


@case("run: HDF5 soft links in a loop", "raw.h5")
def _(ws):
    p = raw_file(ws / "raw.h5")
    with h5py.File(p, "a") as f:
        f["a"] = h5py.SoftLink("/b")
        f["b"] = h5py.SoftLink("/a")
    return ["beamform", "run", p, "-o", ws / "c.h5"] + FAST


@case("run: float64 samples beyond float32", "raw.h5", "sample 7")
def _(ws):
    x = np.random.default_rng(0).standard_normal((6144, 16))
    x[7, 0] = 1e300
    from acam.beamform import default_array, write_raw

    write_raw(ws / "raw.h5", x, FS, default_array().positions[:16], 12.0)
    return ["beamform", "run", ws / "raw.h5", "-o", ws / "c.h5"] + FAST


@case("run: a 240-character output name", expect="succeed",
      check=lambda ws, out: None if (ws / ("c" * 240 + ".h5")).is_file() else (_ for _ in ()).throw(
          AssertionError("no output")))
def _(ws):
    return ["beamform", "run", raw_file(ws / "raw.h5"), "-o", ws / ("c" * 240 + ".h5")] + FAST


# ==================================================================================== runner
def _cli(args):
    from click.testing import CliRunner

    from acam.cli import acam

    return CliRunner().invoke(acam, [str(a) for a in args], catch_exceptions=True)


def snapshot(ws: Path) -> dict:
    out = {}
    for root, dirs, files in os.walk(ws):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[p] = ("file", hashlib.sha256(f.read()).hexdigest())
            else:
                out[p] = (stat.S_IFMT(st.st_mode), os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
    return out


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("no answer in 60 s")


def run_case(c: Case, root: Path) -> tuple[bool, str]:
    ws = root / c.name.replace("/", "_").replace(" ", "_")[:80]
    os.makedirs(ws)
    old_umask = os.umask(0o022)
    try:
        args = [a for a in c.setup(ws)]
        limits = [a for a in args if isinstance(a, tuple)]
        args = [a for a in args if not isinstance(a, tuple)]
        before = snapshot(ws)
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(60)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        try:
            if limits:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limits[0][1], hard))
            r = _cli(args)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.alarm(0)
    except Timeout:
        return False, "hung (no answer in 60 s)"
    finally:
        os.umask(old_umask)
    return judge(c, ws, r, before)


def judge(c: Case, ws: Path, r, before: dict) -> tuple[bool, str]:
    out = r.output.strip()
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return False, f"traceback: {type(r.exception).__name__}: {r.exception}"
    after = snapshot(ws)
    changed = [p for p, v in before.items() if after.get(p) != v and not p.endswith(".part")]   # parts: no input
    if changed:
        return False, f"input changed or removed: {[os.path.relpath(p, ws) for p in changed]}"
    partial = [p for p in after if p.endswith(".part")]
    if partial:
        return False, f"partial output left: {[os.path.relpath(p, ws) for p in partial]}"
    try:
        if c.check is not None:
            c.check(ws, out)
    except AssertionError as exc:
        return False, f"wrong result: {exc}"
    if c.expect == "succeed":
        return (r.exit_code == 0, out.splitlines()[-1] if out else "") if r.exit_code == 0 else \
            (False, f"failed: {out[-300:]}")
    lines = out.splitlines()
    if r.exit_code == 0:
        return False, f"accepted (exit 0): {out[-200:]}"
    if len(lines) != 1 or not lines[0].startswith("Error:"):
        return False, f"not one error line: {out[-400:]!r}"
    missing = [w for w in c.words if str(w) not in lines[0]]
    if missing:
        return False, f"message lacks {missing}: {lines[0]}"
    new = [os.path.relpath(p, ws) for p in after if p not in before and os.path.basename(p) not in c.new_ok
           and not os.path.relpath(p, ws).startswith(tuple(c.new_ok) or ("\0",))]
    if new:
        return False, f"refused but left new files {new}: {lines[0]}"
    return True, lines[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-k", default="", help="only the cases whose name holds this text")
    p.add_argument("--list", action="store_true")
    p.add_argument("--json", help="write every case's verdict here")
    a = p.parse_args(argv)
    cases = [c for c in CASES if a.k in c.name]
    if a.list:
        print("\n".join(c.name for c in cases))
        return 0
    import warnings

    warnings.simplefilter("ignore")
    root = Path(tempfile.mkdtemp(prefix="acam-hostile-"))
    t0 = time.perf_counter()
    rows = []
    for c in cases:
        good, why = run_case(c, root)
        rows.append({"case": c.name, "clean": good, "detail": why})
        print(f"{'ok  ' if good else 'FAIL'} {c.name}: {why}", flush=True)
    n_ok = sum(r["clean"] for r in rows)
    print(f"\n{n_ok} of {len(rows)} cases handled cleanly ({100 * n_ok / max(1, len(rows)):.1f}%) "
          f"in {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"cases": rows, "clean": n_ok, "total": len(rows)}, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    for b in _BASE.values():
        shutil.rmtree(b.parent if b.is_file() else b.parent, ignore_errors=True)
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
