"""The two HDF5 formats: raw recordings and acoustic cubes.

Raw recording (``raw.h5``)
    ``time_data``      (n_samples, n_channels) int16/int32/float32/float64; attribute
                       ``sample_freq`` (Hz) on the dataset or the root (Acoular's names).
    ``mic_positions``  (n_channels, 3) float, metres, camera/array frame.
    optional           root attribute ``frame_rate`` (default 12); ``video`` (n_frames, H, W, 3)
                       uint8 RGB; root attributes ``hfov``/``vfov`` (degrees, camera field of view);
                       ``source_positions`` (n_sources, 3) or (n_sources, n_frames, 3) metres;
                       ``bad_mics`` (n_channels,) bool, True for a broken microphone.

Acoustic cube (``cube.h5``)
    ``cube``           (n_frames, rows, cols, n_bins) power, float32 (or float16); row 0 = top.
    ``frequencies``    (n_bins,) Hz.       ``look_points``  (rows, cols, 3) metres.
                       The cube's dimensions are named ``frame, row, col, frequency`` and carry
                       HDF5 dimension scales with a ``units`` attribute: ``frame_time`` (s),
                       ``row_y`` (m), ``col_x`` (m), ``frequencies`` (Hz).
    attributes         sample_freq, frame_rate, nfft, n_bins, focus, speed_of_sound, hfov, vfov,
                       window, weights, bad_mics, source_file, version, settings_digest.
    ``source_positions`` is copied from the raw file when present.
    A float16 cube is refused (before anything is written) when a value exceeds float16's largest,
    65504: it would be stored as infinity.  Use float32, or scale the recording down.

Outputs are written through :func:`acam.core.safeio.atomic_output` (a part file beside the target,
renamed into place only when complete), so a failure never leaves a half-written file, and no input
of the command - HDF5 link and virtual-dataset targets included - is ever replaced.  Inputs are
checked when opened: wrong-typed attributes, datasets the file does not really hold, dangling links
and missing virtual-dataset sources are each refused in one line naming the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import h5py
import numpy as np

from ..core.errors import AcamError, FormatError
from ..core.h5read import attr_number, attr_text, check_storage, dataset as checked_dataset, read_all
from ..core.resources import check_allocation
from ..core.safeio import atomic_output, h5_output, open_h5, register_input, reserve
from .geometry import ArrayGeometry
from .simulate import MAX_SAMPLE_FREQ, MAX_SAMPLES, MIN_SAMPLE_FREQ
from .sensor import FRAME_RATE

__all__ = ["atomic_output", "RawRecording", "write_raw", "CubeWriter", "Cube", "aligned_empty"]

TIME_DTYPES = (np.int16, np.int32, np.float32, np.float64)
DEFAULT_FRAME_RATE = FRAME_RATE


def _open_h5(path, what: str) -> h5py.File:
    return open_h5(path, what)


def _time_data(f, path: str):
    """The recording's ``time_data`` dataset, checked: 2-D, a sample type we read, at least one
    channel, its storage inside the file."""
    if not isinstance(f.get("time_data"), h5py.Dataset):
        raise FormatError(f"{path}: no 'time_data' dataset (n_samples, n_channels)")
    td = f["time_data"]
    if td.ndim != 2:
        raise FormatError(f"{path}: 'time_data' has shape {td.shape}; expected (n_samples, n_channels)")
    if td.dtype not in [np.dtype(d) for d in TIME_DTYPES]:
        raise FormatError(f"{path}: 'time_data' has dtype {td.dtype}; expected int16, int32, "
                          "float32 or float64")
    if td.shape[1] < 1:
        raise FormatError(f"{path}: 'time_data' has no channels (shape {td.shape})")
    check_storage(td, "time_data", path)
    return td


def _rates(f, td, path: str, frame_rate: float | None) -> tuple[float, float]:
    """``(sample_freq, frame_rate)`` from the file (``frame_rate`` overrides), checked with the
    number of samples and the fields of view."""
    fs = attr_number(td, "sample_freq", path)
    fs = attr_number(f, "sample_freq", path) if fs is None else fs
    if fs is None:
        raise FormatError(f"{path}: sample rate missing (attribute 'sample_freq' on "
                          "'time_data' or the root)")
    if not MIN_SAMPLE_FREQ <= fs <= MAX_SAMPLE_FREQ:
        raise FormatError(f"{path}: sample_freq={fs:g} Hz is not a sample rate (expected "
                          f"{MIN_SAMPLE_FREQ:g} to {MAX_SAMPLE_FREQ:g} Hz)")
    if td.shape[0] > MAX_SAMPLES:
        raise FormatError(f"{path}: 'time_data' declares {td.shape[0]} samples, more than {MAX_SAMPLES:.0e}")
    fr = frame_rate if frame_rate is not None else attr_number(f, "frame_rate", path, DEFAULT_FRAME_RATE)
    if not fr > 0:
        raise FormatError(f"{path}: frame_rate={fr} is not a positive number")
    if fr > fs:
        raise FormatError(f"{path}: frame_rate={fr:g} is higher than the sample rate {fs:g} Hz")
    for name in ("hfov", "vfov"):
        fov = attr_number(f, name, path)
        if fov is not None and not 0 < fov < 180:
            raise FormatError(f"{path}: attribute {name}={fov:g} degrees is not between 0 and 180")
    return fs, float(fr)


def _microphones(f, path: str, n_ch: int, array: ArrayGeometry | None):
    """``(array, bad)``: the file's microphone positions (or ``array``, registered as an input) and
    its broken-microphone mask, both checked against the ``n_ch`` channels."""
    if array is None:
        if "mic_positions" not in f:
            raise FormatError(f"{path}: no 'mic_positions' dataset (n_channels, 3); "
                              "give the array's geometry (an array file)")
        pos = read_all(f, "mic_positions", path, ndim=2)
        try:
            array = ArrayGeometry(pos, os.path.basename(path))
        except AcamError as exc:
            raise FormatError(f"{path}: 'mic_positions': {exc}") from None
    elif array.source:
        register_input(array.source)
    if array.n_mics != n_ch:
        raise FormatError(f"{path}: {n_ch} channels do not fit {array.n_mics} microphones")
    bad = np.zeros(n_ch, bool)
    if "bad_mics" in f:
        bad = np.asarray(read_all(f, "bad_mics", path, kinds="biuf"), bool).reshape(-1)
        if bad.shape != (n_ch,):
            raise FormatError(f"{path}: 'bad_mics' has {bad.size} entries for {n_ch} channels")
        if bad.all():
            raise FormatError(f"{path}: 'bad_mics' marks every microphone as broken")
    return array, bad


@dataclass
class RawRecording:
    """A raw recording opened for streaming.  Use as a context manager or call :meth:`close`.

    Validates the layout when opened: a clear :class:`FormatError` names what is wrong.
    """

    path: str
    file: h5py.File
    time_data: h5py.Dataset
    sample_freq: float
    frame_rate: float
    geometry: ArrayGeometry
    bad_mics: np.ndarray

    @classmethod
    def open(cls, path, frame_rate: float | None = None, array: ArrayGeometry | None = None):
        """Open ``path``; ``array`` overrides the file's microphone positions."""
        if frame_rate is not None and not (isinstance(frame_rate, (int, float)) and frame_rate > 0
                                           and math.isfinite(frame_rate)):
            raise AcamError(f"frame_rate={frame_rate} must be a positive number of frames per second")
        f = _open_h5(path, "recording")
        path = os.fspath(path)
        try:
            td = _time_data(f, path)
            fs, fr = _rates(f, td, path, frame_rate)
            array, bad = _microphones(f, path, td.shape[1], array)
            return cls(path, f, td, fs, fr, array, bad)
        except BaseException:
            f.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.file.close()

    @property
    def n_samples(self) -> int:
        return self.time_data.shape[0]

    @property
    def n_channels(self) -> int:
        return self.time_data.shape[1]

    def attr(self, name, default=None):
        """A root attribute (``default`` when absent): text as ``str``, anything else as a float (an
        array, an empty or a non-numeric value is refused)."""
        if name in self.file.attrs and isinstance(self.file.attrs[name], (bytes, str)):
            return attr_text(self.file, name, self.path)
        return attr_number(self.file, name, self.path, default)

    def dataset(self, name):
        """A whole optional dataset as an array, or None (``source_positions`` checked for shape)."""
        if name not in self.file:
            return None
        arr = read_all(self.file, name, self.path)
        if name == "source_positions":
            check_source_positions(arr, self.path)
        return arr

    def read_frames(self, starts: np.ndarray, frame_len: int, dtype=np.float32) -> np.ndarray:
        """Frames ``[s, s + frame_len)`` for each start, as ``(n_frames, frame_len, n_channels)``.

        Raises :class:`FormatError` when the block holds NaN or infinite samples, or samples beyond
        :data:`MAX_SAMPLE_VALUE` (their power would overflow float32, or they would when cast).
        """
        lo, hi = int(starts[0]), int(starts[-1]) + frame_len
        block = self.time_data[lo:hi]
        if block.dtype.kind == "f" and block.size:
            low, high = block.min(), block.max()          # NaN propagates: one check for all three
            if not (-MAX_SAMPLE_VALUE <= low and high <= MAX_SAMPLE_VALUE):
                bad_at = ~np.isfinite(block)
                if bad_at.any():
                    bad = int(np.argwhere(bad_at)[0, 0]) + lo
                    raise FormatError(f"{self.path}: 'time_data' holds NaN or infinite values (first at sample {bad})")
                bad = int(np.argwhere(np.abs(block) > MAX_SAMPLE_VALUE)[0, 0]) + lo
                raise FormatError(f"{self.path}: 'time_data' holds a sample of {max(-low, high):.3g} at sample {bad}, "
                                  f"beyond {MAX_SAMPLE_VALUE:.0e} (its power would overflow float32)")
        block = block.astype(dtype, copy=False)
        if np.all(np.diff(starts) == frame_len):
            return block[: len(starts) * frame_len].reshape(len(starts), frame_len, -1)
        return block[(starts - lo)[:, None] + np.arange(frame_len)[None, :]]


def write_raw(path, time_data: np.ndarray, sample_freq: float, mic_positions: np.ndarray,
              frame_rate: float = DEFAULT_FRAME_RATE, *, video: np.ndarray | None = None,
              source_positions: np.ndarray | None = None, bad_mics: np.ndarray | None = None,
              attrs: dict | None = None) -> None:
    """Write a raw recording (atomically).  Shapes and units as in the module docs."""
    time_data = np.asarray(time_data)
    for name, v in (("sample_freq", sample_freq), ("frame_rate", frame_rate)):
        if not (isinstance(v, (int, float, np.number)) and v > 0 and math.isfinite(v)):
            raise AcamError(f"{name}={v} must be a positive number")
    if time_data.dtype.kind not in "iuf":
        raise AcamError(f"time_data has dtype {time_data.dtype}; expected numbers")
    if time_data.ndim != 2:
        raise AcamError(f"time_data has shape {time_data.shape}; expected (n_samples, n_channels)")
    mic_positions = np.asarray(mic_positions, float)
    if mic_positions.shape != (time_data.shape[1], 3):
        raise AcamError(f"{time_data.shape[1]} channels do not fit mic_positions of shape {mic_positions.shape}")
    with atomic_output(path) as tmp, h5_output(tmp) as f:
        reserve(f, time_data.nbytes + (0 if video is None else np.asarray(video).nbytes) + (1 << 20), path)
        td = f.create_dataset("time_data", data=time_data)
        td.attrs["sample_freq"] = float(sample_freq)
        f.attrs["sample_freq"] = float(sample_freq)
        f.attrs["frame_rate"] = float(frame_rate)
        f.create_dataset("mic_positions", data=mic_positions)
        if video is not None:
            f.create_dataset("video", data=np.asarray(video, np.uint8), chunks=True, compression="gzip",
                             compression_opts=1)
        if source_positions is not None:
            f.create_dataset("source_positions", data=np.asarray(source_positions, float))
        if bad_mics is not None:
            f.create_dataset("bad_mics", data=np.asarray(bad_mics, bool))
        for k, v in (attrs or {}).items():
            f.attrs[k] = v


PAGE = 4096
MAX_SAMPLE_VALUE = 1e15        # |sample| above this: the cube's power would overflow float32
F16_MAX = float(np.finfo(np.float16).max)


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised array whose data starts on a page boundary (for ``O_DIRECT`` writes)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + PAGE, np.uint8)
    off = (-raw.ctypes.data) % PAGE
    return raw[off:off + nbytes].view(dtype).reshape(shape)


class CubeWriter:
    """Create a cube file and write it block by block (call inside :func:`atomic_output`).

    The ``cube`` dataset is contiguous, page-aligned and allocated up front, so blocks are written
    straight to their place in the file with ``os.pwrite`` (no HDF5 call, no GIL held), which lets
    writing overlap the beamforming of the next block.  Where the file system allows it, page-aligned
    blocks go through ``O_DIRECT``: they skip the page cache, whose filling costs more CPU time than
    the beamformer can spare on a small machine.  Anything else takes ordinary buffered writes.
    """

    def __init__(self, path, n_frames: int, rows: int, cols: int, frequencies: np.ndarray,
                 look_points: np.ndarray, attrs: dict, dtype=np.float32,
                 extra: dict[str, np.ndarray] | None = None, final: str | None = None):
        self.path = os.fspath(path)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.shape = (n_frames, rows, cols, len(frequencies))
        with h5_output(self.path, alignment_threshold=PAGE, alignment_interval=PAGE) as f:
            extra_bytes = sum(np.asarray(v).nbytes for v in (extra or {}).values() if v is not None)
            reserve(f, int(np.prod(self.shape)) * self.dtype.itemsize + extra_bytes
                    + np.asarray(look_points).nbytes + len(frequencies) * 16 + (1 << 20), final or self.path)
            f.create_dataset("frequencies", data=np.asarray(frequencies, float))
            f.create_dataset("look_points", data=np.asarray(look_points, float))
            for k, v in (extra or {}).items():
                if v is not None:
                    f.create_dataset(k, data=v)
            for k, v in attrs.items():
                f.attrs[k] = v
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.CONTIGUOUS)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            dcpl.set_obj_track_times(False)  # no timestamps: equal inputs give byte-equal files
            space = h5py.h5s.create_simple(self.shape)
            tid = h5py.h5t.py_create(self.dtype)
            dsid = h5py.h5d.create(f.id, b"cube", tid, space, dcpl=dcpl)
            self.offset = dsid.get_offset()
            f.flush()           # a full disk fails here, before any object is closed (see h5_output)
            dsid.close()
            label_cube_dimensions(f, attrs)
        if self.offset is None and np.prod(self.shape) > 0:
            raise AcamError(f"cannot allocate the cube in {self.path!r}")
        self._open()

    @classmethod
    def attach(cls, path) -> "CubeWriter":
        """Write into a cube file that another process created (one block range per task)."""
        self = cls.__new__(cls)
        self.path = os.fspath(path)
        with h5py.File(self.path, "r") as f:
            d = f["cube"]
            self.dtype, self.shape, self.offset = d.dtype, d.shape, d.id.get_offset()
        self._open()
        return self

    def _open(self) -> None:
        self.frame_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_WRONLY)
        self._direct = None
        if hasattr(os, "O_DIRECT") and self.offset is not None and self.offset % PAGE == 0:
            try:
                self._direct = os.open(self.path, os.O_WRONLY | os.O_DIRECT)
            except OSError:  # tmpfs and some network file systems refuse O_DIRECT
                self._direct = None
        self._scratch = None

    def write(self, first_frame: int, block: np.ndarray) -> None:
        """Write frames ``first_frame...`` from a host array ``(n, rows, cols, n_bins)``."""
        if block.shape[1:] != self.shape[1:] or first_frame + block.shape[0] > self.shape[0]:
            raise AcamError(f"block of shape {block.shape} does not fit cube {self.shape} at frame {first_frame}")
        if self.dtype.itemsize == 2 and block.size:
            peak = float(np.max(block))
            if not peak <= F16_MAX:       # also NaN
                raise AcamError(f"cube values reach {peak:.3g}, beyond float16's largest {F16_MAX:g}; "
                                "use dtype float32 (or scale the recording down)")
        if block.dtype != self.dtype or not block.flags.c_contiguous:
            if self._scratch is None or self._scratch.size < block.size:
                self._scratch = aligned_empty((block.size,), self.dtype)
            data = self._scratch[: block.size].reshape(block.shape)
            data[...] = block
        else:
            data = block
        view = memoryview(data.reshape(-1).view(np.uint8))
        pos = self.offset + first_frame * self.frame_bytes
        if self._direct is not None and pos % PAGE == 0 and data.ctypes.data % PAGE == 0:
            n_direct = view.nbytes // PAGE * PAGE
            try:
                self._pwrite_all(self._direct, view[:n_direct], pos)
                view, pos = view[n_direct:], pos + n_direct
            except OSError:  # a file system that accepted the flag but not the write
                os.close(self._direct)
                self._direct = None
        self._pwrite_all(self._fd, view, pos)

    @staticmethod
    def _pwrite_all(fd: int, view: memoryview, pos: int) -> None:
        while view.nbytes:
            n = os.pwrite(fd, view, pos)
            view = view[n:]
            pos += n

    def close(self) -> None:
        for name in ("_direct", "_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)


CUBE_NUMBERS = ("sample_freq", "frame_rate", "nfft", "n_bins", "focus", "speed_of_sound", "hfov", "vfov",
                "frame_len", "segments_per_frame", "tolerance")


def check_source_positions(arr: np.ndarray, path) -> None:
    """``source_positions`` must be (n_sources, 3) or (n_sources, n_frames, 3) finite metres."""
    if arr.ndim not in (2, 3) or arr.shape[-1] != 3:
        raise FormatError(f"{path}: 'source_positions' has shape {arr.shape}; expected (n_sources, 3) "
                          "or (n_sources, n_frames, 3)")
    if not np.all(np.isfinite(arr)):
        raise FormatError(f"{path}: 'source_positions' holds NaN or infinite values")
    if arr.size and float(np.abs(arr).max()) > 1000.0:
        raise FormatError(f"{path}: 'source_positions' reach {float(np.abs(arr).max()):.3g} m, more than 1000 m")
CUBE_DIMENSIONS = (("frame", "frame_time", "s", "start of each frame (time of its first sample)"),
                   ("row", "row_y", "m", "y (up) of the row's look points on the focus plane; row 0 = top"),
                   ("col", "col_x", "m", "x (right) of the column's look points on the focus plane"),
                   ("frequency", "frequencies", "Hz", "centre frequency of each bin"))


def label_cube_dimensions(f: h5py.File, attrs: dict) -> None:
    """Name the ``cube`` dataset's four dimensions and attach HDF5 dimension scales with units
    (``frame_time`` s, ``row_y`` m, ``col_x`` m, ``frequencies`` Hz), so any HDF5 reader (h5py's
    ``dims``, netCDF tools, HDFView) can label the axes.  No timestamps: files stay byte-equal."""
    cube = f["cube"]
    n, rows, cols, _ = cube.shape
    fs, fr = attrs.get("sample_freq"), attrs.get("frame_rate")
    if fs and fr:
        times = np.floor(np.arange(n) * (float(fs) / float(fr)) + 0.5) / float(fs)
    else:
        times = np.arange(n, dtype=float)
    look = f["look_points"][()]
    values = {"frame_time": times, "row_y": look[:, 0, 1] if look.shape[:2] == (rows, cols) else np.arange(rows),
              "col_x": look[0, :, 0] if look.shape[:2] == (rows, cols) else np.arange(cols)}
    for i, (label, name, unit, what) in enumerate(CUBE_DIMENSIONS):
        if name not in f:
            f.create_dataset(name, data=np.asarray(values[name], float))
        scale = f[name]
        scale.attrs["units"] = unit
        scale.attrs["long_name"] = what
        scale.make_scale(label)
        cube.dims[i].label = label
        cube.dims[i].attach_scale(scale)


@dataclass
class Cube:
    """A cube file's contents (the ``cube`` dataset stays on disk until sliced)."""

    path: str
    file: h5py.File
    cube: h5py.Dataset
    frequencies: np.ndarray
    look_points: np.ndarray
    attrs: dict

    @classmethod
    def open(cls, path) -> "Cube":
        """Open a cube file, checking its layout, its numeric attributes and its stored size."""
        f = _open_h5(path, "cube file")
        path = os.fspath(path)
        try:
            for name in ("cube", "frequencies", "look_points"):
                if name not in f:
                    raise FormatError(f"{path}: no {name!r} dataset; is this an acoustic cube file?")
            cube = checked_dataset(f, "cube", path, kinds="f")
            if cube.ndim != 4:
                raise FormatError(f"{path}: 'cube' has shape {cube.shape}; expected (n_frames, rows, cols, n_bins)")
            if min(cube.shape) < 1:
                raise FormatError(f"{path}: 'cube' has shape {cube.shape}: no frames, pixels or bins")
            freqs = read_all(f, "frequencies", path, ndim=1)
            if freqs.shape != (cube.shape[3],):
                raise FormatError(f"{path}: {freqs.size} frequencies for {cube.shape[3]} bins")
            look = read_all(f, "look_points", path)
            if look.shape != cube.shape[1:3] + (3,):
                raise FormatError(f"{path}: 'look_points' has shape {look.shape}; expected "
                                  f"{cube.shape[1:3] + (3,)}")
            attrs = dict(f.attrs)
            for name in CUBE_NUMBERS:
                if name in attrs:
                    attrs[name] = attr_number(f, name, path, positive=name != "tolerance")
            for name, want in (("n_bins", cube.shape[3]), ("nfft", 2 * cube.shape[3])):
                if name in attrs and attrs[name] != want:
                    raise FormatError(f"{path}: attribute {name}={attrs[name]:g} does not fit the cube's "
                                      f"{cube.shape[3]} bins (expected {want})")
            if "source_positions" in f:
                check_source_positions(read_all(f, "source_positions", path), path)
            return cls(path, f, cube, freqs, look, attrs)
        except BaseException:
            f.close()
            raise

    def require(self, *names) -> None:
        """Refuse a cube that lacks one of the attributes ``names`` (a step needs them)."""
        missing = [n for n in names if n not in self.attrs]
        if missing:
            raise FormatError(f"{self.path}: attribute(s) {', '.join(map(repr, missing))} missing; "
                              "is this a cube made by 'beamform run'?")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def band_energy(self, band: tuple[float, float], frames=slice(None)) -> np.ndarray:
        """Power summed over bins with ``band[0] <= f <= band[1]``: ``(n_frames, rows, cols)``."""
        lo, hi = band
        sel = np.flatnonzero((self.frequencies >= lo) & (self.frequencies <= hi))
        if sel.size == 0:
            raise AcamError(f"band {lo}-{hi} Hz holds no bin of this cube "
                            f"({self.frequencies[0]:.0f}-{self.frequencies[-1]:.0f} Hz)")
        out = []
        n = self.cube.shape[0]
        check_allocation(2 * np.prod(self.cube.shape[1:3]) * sel.size * 8, f"a frame of {self.path}")
        idx = range(n)[frames] if isinstance(frames, slice) else list(frames)
        for t in idx:
            e = self.cube[t, :, :, sel[0]:sel[-1] + 1].astype(np.float64).sum(-1)
            low = float(e.min()) if e.size else 0.0
            if low < 0:                     # NaN passes here; the callers name it
                raise FormatError(f"{self.path}: frame {t} holds negative power ({low:.3g}); a cube holds "
                                  "power, 0 or more")
            out.append(e)
        return np.array(out).reshape(len(out), *self.cube.shape[1:3])
