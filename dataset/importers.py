"""Importers for real data: the authors' TFRecord files and the sensor's raw ``.dc`` frames.

TFRecord (no TensorFlow needed)
    A file is a stream of records, each ``uint64 length | uint32 masked CRC-32C of length | data |
    uint32 masked CRC-32C of data`` (little endian), usually GZIP-compressed as a whole.  Each record
    holds one ``tensorflow.SequenceExample`` protobuf, parsed here from the wire format.  The authors
    store one second per record: context (int64) ``action``, ``location`` (0-based), ``subject``
    (0-based), ``audio_image/{height,width,depth}``, ``audio_data/{mics,samples}``,
    ``video/{height,width,depth}``; sequence features, 12 per record, each one raw little-endian
    C-order array: ``audio/image`` float32 36x48x12, ``audio/data`` int32 1x1024, ``video/image``
    uint8 480x640x3 in BGR order.
    A sequence is the records of one folder that share action, location and subject, in file-name
    order; it becomes one sequence file of our layout (``mfcc`` from ``audio/image``, ``mono`` from
    ``audio/data`` in the sensor's integer counts, ``video`` converted to RGB) and the manifest gets
    the paper's splits.

Sensor ``.dc`` frames
    One file per video frame: int32, 128 microphones x 1024 samples in Fortran order.  Files are
    taken in natural name order and concatenated into a raw recording (``time_data`` int32 at
    12 288 Hz, 12 fps) with a broken-microphone mask (the authors' device: 79 and 105, 0-based).
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from collections import defaultdict

import numpy as np

from acam.core.errors import AcamError, FormatError
from acam.core.resources import check_allocation
from acam.core.safeio import (atomic_output, h5_output, input_file, reads_inputs, register_input, register_tree,
                              reserve)
from acam.beamform.geometry import ArrayGeometry, default_array
from acam.beamform.sensor import BAD_MICS, FRAME_RATE, SAMPLE_FREQ

DC_MICS, DC_SAMPLES = 128, 1024
DC_BAD_MICS = BAD_MICS


# ------------------------------------------------------------------------------ TFRecord framing
def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _open_maybe_gzip(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


MAX_RECORD = 1 << 30      # bytes; the authors' records (one second) are a few MB


def iter_records(path):
    """Yield the payload of every record of a TFRecord file (GZIP or plain), checking both CRCs.

    A record's length is checked before its data is read: against what a plain file still holds,
    against :data:`MAX_RECORD` and against the memory available."""
    path = input_file(path, "TFRecord file")
    size = os.path.getsize(path)
    i = 0
    try:
        with _open_maybe_gzip(path) as f:
            compressed = isinstance(f, gzip.GzipFile)
            while True:
                head = f.read(12)
                if not head:
                    return
                if len(head) < 12:
                    raise FormatError(f"{path}: record {i}: truncated header")
                length, len_crc = struct.unpack("<QI", head)
                if _masked_crc(head[:8]) != len_crc:
                    raise FormatError(f"{path}: record {i}: corrupt length (CRC mismatch)")
                left = None if compressed else size - f.tell() - 4
                if (left is not None and length > left) or length > MAX_RECORD:
                    raise FormatError(f"{path}: record {i}: length {length} bytes is more than the file "
                                      + (f"holds ({max(left, 0)} bytes left)" if left is not None and length > left
                                         else f"format allows ({MAX_RECORD} bytes per record)"))
                check_allocation(length, f"{path}: record {i} ({length} bytes)")
                data = f.read(length)
                tail = f.read(4)
                if len(data) < length or len(tail) < 4:
                    raise FormatError(f"{path}: record {i}: truncated data")
                if _masked_crc(data) != struct.unpack("<I", tail)[0]:
                    raise FormatError(f"{path}: record {i}: corrupt data (CRC mismatch)")
                yield data
                i += 1
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise FormatError(f"{path}: record {i}: cannot read ({exc})") from None


def write_records(path, payloads, compress: bool = True) -> None:
    """Write payloads as a TFRecord file (GZIP by default), atomically."""
    with atomic_output(path) as tmp, (gzip.open if compress else open)(tmp, "wb") as f:
        for data in payloads:
            head = struct.pack("<Q", len(data))
            f.write(head + struct.pack("<I", _masked_crc(head)) + data + struct.pack("<I", _masked_crc(data)))


# ----------------------------------------------------------------------------- protobuf wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        if shift >= 64:
            raise ValueError(f"varint at byte {pos} is longer than 10 bytes (overflows 64 bits)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if result >> 64:
                raise ValueError(f"varint ending at byte {pos} overflows 64 bits")
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            val, pos = buf[pos:pos + n], pos + n
        elif wt in (5, 1):
            n = 4 if wt == 5 else 8
            if pos + n > len(buf):
                raise ValueError("truncated fixed-size field")
            val, pos = buf[pos:pos + n], pos + n
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield num, wt, val


def _feature(buf: bytes):
    """A tf.train.Feature -> ('bytes', [..]) | ('float', array) | ('int64', array)."""
    for num, _, val in _fields(buf):
        if num == 1:
            return "bytes", [v for n, _, v in _fields(val) if n == 1]
        if num == 2:
            vals = []
            for n, wt, v in _fields(val):
                if n == 1:
                    if wt in (2, 5) and len(v) % 4:
                        raise ValueError(f"float feature of {len(v)} bytes, not a multiple of 4")
                    vals.append(np.frombuffer(v, "<f4") if wt in (2, 5) else np.array([], "<f4"))
            return "float", np.concatenate(vals) if vals else np.array([], "<f4")
        if num == 3:
            vals = []
            for n, wt, v in _fields(val):
                if n != 1:
                    continue
                if wt == 0:
                    vals.append(v)
                else:
                    p = 0
                    while p < len(v):
                        x, p = _varint(v, p)
                        vals.append(x)
            arr = np.array(vals, np.uint64).astype(np.int64)
            return "int64", arr
    return "bytes", []


def _map(buf: bytes, parse_value):
    out = {}
    for num, _, entry in _fields(buf):
        if num != 1:
            continue
        key, value = None, b""
        for n, _, v in _fields(entry):
            if n == 1:
                key = v.decode()
            elif n == 2:
                value = v
        out[key] = parse_value(value)
    return out


def parse_sequence_example(buf: bytes) -> tuple[dict, dict]:
    """Context features and feature lists of a serialized ``tf.train.SequenceExample``."""
    context, lists = {}, {}
    for num, _, val in _fields(buf):
        if num == 1:
            context = _map(val, _feature)
        elif num == 2:
            lists = _map(val, lambda b: [_feature(v) for n, _, v in _fields(b) if n == 1])
    return context, lists


def _key(num: int, wt: int) -> bytes:
    return _enc_varint(num << 3 | wt)


def _enc_varint(x: int) -> bytes:
    out = bytearray()
    x &= (1 << 64) - 1
    while True:
        b = x & 0x7F
        x >>= 7
        out.append(b | (0x80 if x else 0))
        if not x:
            return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    return _key(num, 2) + _enc_varint(len(payload)) + payload


def encode_feature(kind: str, values) -> bytes:
    if kind == "bytes":
        inner = b"".join(_ld(1, v) for v in values)
        return _ld(1, inner)
    if kind == "int64":
        packed = b"".join(_enc_varint(int(v)) for v in values)
        return _ld(3, _ld(1, packed))
    if kind == "float":
        return _ld(2, _ld(1, np.asarray(values, "<f4").tobytes()))
    raise ValueError(kind)


def encode_sequence_example(context: dict, lists: dict) -> bytes:
    """Serialize ``{name: (kind, values)}`` context and ``{name: [(kind, values), ...]}`` lists."""
    ctx = b"".join(_ld(1, _ld(1, k.encode()) + _ld(2, encode_feature(*v))) for k, v in context.items())
    fl = b"".join(_ld(1, _ld(1, k.encode()) + _ld(2, b"".join(_ld(1, encode_feature(*f)) for f in v)))
                  for k, v in lists.items())
    return _ld(1, ctx) + _ld(2, fl)


# --------------------------------------------------------------------------------- TFRecord import
def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _ctx_int(ctx, key, path, i, lo: int, hi: int):
    if key not in ctx or ctx[key][0] != "int64" or len(ctx[key][1]) != 1:
        raise FormatError(f"{path}: record {i}: context feature {key!r} missing or not one int64")
    v = int(ctx[key][1][0])
    if not lo <= v <= hi:
        raise FormatError(f"{path}: record {i}: {key}={v} is outside {lo}..{hi}")
    return v


MAX_DIM = 1 << 16


def _decode_record(buf: bytes, path: str, i: int) -> dict:
    from .sounds import ACTIONS

    try:
        ctx, lists = parse_sequence_example(buf)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: record {i}: not a SequenceExample ({exc})") from None
    g = lambda k: _ctx_int(ctx, k, path, i, 1, MAX_DIM)  # noqa: E731 - a dimension
    shapes = {"audio/image": ((g("audio_image/height"), g("audio_image/width"), g("audio_image/depth")), "<f4"),
              "audio/data": ((g("audio_data/mics"), g("audio_data/samples")), "<i4"),
              "video/image": ((g("video/height"), g("video/width"), g("video/depth")), "u1")}
    if shapes["video/image"][0][2] != 3:
        raise FormatError(f"{path}: record {i}: video/depth={shapes['video/image'][0][2]}; expected 3 (BGR)")
    out = {"action": _ctx_int(ctx, "action", path, i, 0, len(ACTIONS) - 1),
           "location": _ctx_int(ctx, "location", path, i, 0, 2),
           "subject": _ctx_int(ctx, "subject", path, i, 0, 999)}
    for name, (shape, dtype) in shapes.items():
        if name not in lists:
            raise FormatError(f"{path}: record {i}: sequence feature {name!r} missing")
        if not lists[name]:
            raise FormatError(f"{path}: record {i}: sequence feature {name!r} holds no frames")
        frames = []
        for j, (kind, vals) in enumerate(lists[name]):
            if kind != "bytes" or len(vals) != 1:
                raise FormatError(f"{path}: record {i}: {name}[{j}] is not one bytes value")
            want = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if len(vals[0]) != want:
                raise FormatError(f"{path}: record {i}: {name}[{j}] holds {len(vals[0])} bytes, "
                                  f"expected {want} for {shape} {np.dtype(dtype).name}")
            frame = np.frombuffer(vals[0], dtype).reshape(shape)
            if frame.dtype.kind == "f" and not np.isfinite(frame).all():
                bad = "NaN" if np.isnan(frame).any() else "infinite"
                raise FormatError(f"{path}: record {i}: {name}[{j}] holds {bad} values")
            frames.append(frame)
        out[name] = np.stack(frames)
    n = {len(out[k]) for k in shapes}
    if len(n) != 1:
        raise FormatError(f"{path}: record {i}: feature lists have different lengths {sorted(n)}")
    return out


def check_dataset_folder(out_dir: str) -> None:
    """Refuse an output dataset folder that is a file, lies inside a folder the command reads, or
    holds a training run."""
    from acam.core.safeio import check_output_folder, folder_kind

    check_output_folder(out_dir, "output folder")
    if os.path.isdir(out_dir) and folder_kind(out_dir) == "run":
        raise AcamError(f"output folder {out_dir!r} holds a training run (best.pt, last.pt or log.csv), not a "
                        "dataset; choose another folder")


def _claim_folder(out_dir: str, src_dir: str) -> None:
    """Refuse an output folder holding another dataset (as ``dataset build`` does); claim it by a
    manifest naming the source, so an interrupted import can be run again into it."""
    from .store import MANIFEST, read_manifest, write_manifest

    check_dataset_folder(out_dir)
    if os.path.exists(os.path.join(out_dir, MANIFEST)):
        old = read_manifest(out_dir)
        if old.get("imported_from") != os.path.abspath(src_dir):
            raise AcamError(f"{out_dir!r} holds another dataset ({old.get('imported_from') or 'preset ' + str((old.get('preset') or {}).get('name'))}); "
                            "choose another folder")
    elif os.path.isdir(os.path.join(out_dir, "sequences")) and os.listdir(os.path.join(out_dir, "sequences")):
        raise AcamError(f"{out_dir!r} already holds sequence files but no manifest; choose another folder")
    os.makedirs(os.path.join(out_dir, "sequences"), exist_ok=True)
    write_manifest(out_dir, {"kind": "acam-dataset", "imported_from": os.path.abspath(src_dir), "seed": None,
                             "preset": None, "sample_freq": SAMPLE_FREQ, "frame_rate": FRAME_RATE, "sequences": []})


_FEATURES = ("audio/image", "audio/data", "video/image")


@reads_inputs
def import_tfrecord(src_dir, out_dir, progress: bool = False) -> dict:
    """Import a folder tree of the authors' TFRecord files into a dataset folder (see module docs)."""
    from .store import assign_splits, sequence_entry, sequence_name, split_record, write_manifest
    from .sounds import ACTIONS

    src_dir, out_dir = os.fspath(src_dir), os.fspath(out_dir)
    if not os.path.isdir(src_dir):
        raise AcamError(f"{src_dir!r} is not a folder")
    register_tree(src_dir, "source folder")             # no output lands among the records
    check_dataset_folder(out_dir)                        # before any record is parsed
    files = []
    for root, _, names in os.walk(src_dir):
        files += [os.path.join(root, n) for n in names if n.endswith((".tfrecord", ".tfrecords", ".gz"))]
    if not files:
        raise AcamError(f"no .tfrecord files under {src_dir!r}")
    files.sort(key=lambda p: (os.path.dirname(p), _natural(os.path.basename(p))))
    groups: dict = defaultdict(list)
    for path in files:
        for i, buf in enumerate(iter_records(path)):
            check_allocation(2 * len(buf), f"{path}: record {i}")
            rec = _decode_record(buf, path, i)
            key = (os.path.dirname(path), rec["action"], rec["location"], rec["subject"])
            if groups[key] and any(groups[key][0][k].shape[1:] != rec[k].shape[1:] for k in _FEATURES):
                raise FormatError(f"{path}: record {i}: frame shapes differ from the earlier records of its sequence")
            groups[key].append(rec)
    if not groups:
        raise AcamError(f"the .tfrecord files under {src_dir!r} hold no record; nothing to import")
    _claim_folder(out_dir, src_dir)
    seqs = []
    reps: dict = defaultdict(int)
    for (folder, action, location, subject), recs in groups.items():
        rep = reps[(action, location, subject)]
        reps[(action, location, subject)] += 1
        name = sequence_name(action, location + 1, subject, rep)
        mfcc = np.concatenate([r["audio/image"] for r in recs]).astype(np.float32)
        mono = np.concatenate([r["audio/data"][:, 0, :].reshape(-1) for r in recs]).astype(np.float32)
        video = np.concatenate([r["video/image"][..., ::-1] for r in recs])
        frame_len = recs[0]["audio/data"].shape[-1]
        path = os.path.join(out_dir, "sequences", name + ".h5")
        with atomic_output(path) as tmp, h5_output(tmp) as f:
            reserve(f, mfcc.nbytes + mono.nbytes + video.nbytes + (1 << 20), path)
            f.create_dataset("mfcc", data=mfcc)
            f.create_dataset("mono", data=mono)
            f.create_dataset("video", data=video, chunks=(1,) + video.shape[1:], compression="gzip",
                             compression_opts=4)
            f.attrs.update({"action": action, "action_name": ACTIONS[action] if action < len(ACTIONS) else "",
                            "scenario": location + 1, "subject": subject, "repetition": rep,
                            "sample_freq": SAMPLE_FREQ, "frame_rate": FRAME_RATE, "frame_len": frame_len,
                            "source": os.path.abspath(folder), "mono_units": "sensor counts"})
        seqs.append(sequence_entry(action, location + 1, subject, rep, len(mfcc), FRAME_RATE))
    splits = assign_splits(seqs)
    for s in seqs:
        s["split"] = splits[s["name"]]
    manifest = {"kind": "acam-dataset", "imported_from": os.path.abspath(src_dir), "seed": None,
                "splits": split_record(),
                "preset": None, "sample_freq": SAMPLE_FREQ, "frame_rate": FRAME_RATE, "sequences": seqs}
    write_manifest(out_dir, manifest)
    return manifest


# -------------------------------------------------------------------------------------- .dc import
@reads_inputs
def import_dc(src_dir, out_path, array: ArrayGeometry | None = None, bad_mics=DC_BAD_MICS) -> int:
    """Concatenate a folder of ``.dc`` frame files into a raw recording; returns the frame count."""
    src_dir = os.fspath(src_dir)
    if not os.path.isdir(src_dir):
        raise AcamError(f"{src_dir!r} is not a folder")
    files = sorted((n for n in os.listdir(src_dir) if n.lower().endswith(".dc")), key=_natural)
    if not files:
        raise AcamError(f"no .dc files in {src_dir!r}")
    for name in files:                      # every frame file is an input: none may be the output
        input_file(os.path.join(src_dir, name), ".dc frame file")
    if array is not None and array.source:
        register_input(array.source)
    geometry = array or default_array()
    if geometry.n_mics != DC_MICS:
        raise AcamError(f"{DC_MICS} channels do not fit {geometry.n_mics} microphones of the array file")
    frame_bytes = DC_MICS * DC_SAMPLES * 4
    mask = np.zeros(DC_MICS, bool)
    for m in bad_mics:
        if not 0 <= int(m) < DC_MICS:
            raise AcamError(f"bad microphone {m} is outside 0..{DC_MICS - 1}")
        mask[int(m)] = True
    with atomic_output(out_path) as tmp, h5_output(tmp) as f:
        reserve(f, len(files) * DC_SAMPLES * DC_MICS * 4 + (1 << 20), out_path)
        td = f.create_dataset("time_data", (len(files) * DC_SAMPLES, DC_MICS), np.int32)
        for i, name in enumerate(files):
            path = os.path.join(src_dir, name)
            size = os.path.getsize(path)
            if size != frame_bytes:
                raise FormatError(f"{path}: {size} bytes; a .dc frame holds {frame_bytes} "
                                  f"({DC_MICS} x {DC_SAMPLES} int32)")
            frame = np.fromfile(path, "<i4").reshape((DC_MICS, DC_SAMPLES), order="F")
            frame = frame.T.copy()
            frame[:, mask] = 0
            td[i * DC_SAMPLES:(i + 1) * DC_SAMPLES] = frame
        td.attrs["sample_freq"] = SAMPLE_FREQ
        f.attrs.update({"sample_freq": SAMPLE_FREQ, "frame_rate": FRAME_RATE, "source": os.path.abspath(src_dir),
                        "positions_note": "array file given" if array else
                        "the sensor's positions are unpublished: acam's default layout stands in"})
        f.create_dataset("mic_positions", data=geometry.positions)
        f.create_dataset("bad_mics", data=mask)
    return len(files)
