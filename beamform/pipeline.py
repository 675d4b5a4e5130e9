"""Whole files: stream a raw recording through a :class:`Beamformer` into a cube file."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import __version__
from ..core.progress import progress_bar
from ..core.errors import AcamError
from .filter_and_sum import Beamformer, frame_starts
from .geometry import ArrayGeometry
from .grid import CameraGrid
from .io import CubeWriter, RawRecording, aligned_empty, atomic_output
from .sensor import HFOV, IMAGE_COLS, IMAGE_ROWS, N_BINS, VFOV
from .steering import SPEED_OF_SOUND, SteeringSpec


@dataclass(frozen=True)
class RunSettings:
    """Options of ``beamform run`` (see its ``--help``)."""

    bins: int = N_BINS
    focus: float = 2.0
    hfov: float | None = None     # None: the recording's attribute, else 60
    vfov: float | None = None     # None: the recording's attribute, else 45
    rows: int = IMAGE_ROWS
    cols: int = IMAGE_COLS
    speed_of_sound: float = SPEED_OF_SOUND
    window: str = "boxcar"
    device: str = "auto"
    precision: str = "single"
    out_dtype: str = "float32"
    frame_rate: float | None = None
    block_frames: int | None = None
    threads: int | None = None
    tolerance: float = 0.0
    steering: str = "inverse"     # a formulation of acam.beamform.steering.FORMULATIONS


@dataclass
class RunReport:
    n_frames: int
    seconds_of_audio: float
    device: str
    settings_digest: str


def build_beamformer(raw: RawRecording, s: RunSettings) -> Beamformer:
    """The beamformer a recording and a set of options call for."""
    if s.out_dtype not in ("float32", "float16"):
        raise AcamError(f"dtype={s.out_dtype!r} must be float32 or float16")
    hfov = s.hfov if s.hfov is not None else float(raw.attr("hfov", HFOV))
    vfov = s.vfov if s.vfov is not None else float(raw.attr("vfov", VFOV))
    grid = CameraGrid(s.rows, s.cols, hfov, vfov, s.focus)
    weights = (~raw.bad_mics).astype(float)
    spec = SteeringSpec(raw.geometry, grid, raw.sample_freq, s.bins, s.speed_of_sound, weights, s.steering)
    key = (spec.digest, raw.frame_rate, s.window, s.device, s.precision, s.threads, s.tolerance)
    bf = _RECENT.pop(key, None)
    if bf is None:
        bf = Beamformer(spec, raw.frame_rate, s.window, s.device, s.precision, s.threads, s.tolerance)
    _RECENT[key] = bf                  # most recent last; recordings of one array share the steering
    while len(_RECENT) > 2:
        _RECENT.pop(next(iter(_RECENT)))
    return bf


_RECENT: dict = {}   # the last beamformers built in this process (their steering matrices are built once)


def beamform_file(raw_path, cube_path, settings: RunSettings = RunSettings(),
                  array: ArrayGeometry | None = None, progress: bool = False) -> RunReport:
    """Beamform every complete frame of ``raw_path`` into the cube file ``cube_path``.

    Memory stays bounded by the block size whatever the recording's length; the output appears only
    when complete.
    """
    with RawRecording.open(raw_path, settings.frame_rate, array) as raw:
        bf = build_beamformer(raw, settings)
        plan = _plan(raw, bf, settings)
        bar = progress_bar(plan.n_frames, progress, os.path.basename(os.fspath(raw_path)), "frame")
        with atomic_output(cube_path, protect=(raw.path,)) as tmp:
            writer = plan.create(tmp)
            try:
                _stream(raw, bf, plan.starts, plan.block, writer, bar)
            finally:
                writer.close()
                bar.close()
        return plan.report


@dataclass
class _Plan:
    """Everything about a recording's cube that is known before beamforming it."""

    starts: np.ndarray
    block: int
    shape: tuple
    frequencies: np.ndarray
    look_points: np.ndarray
    attrs: dict
    extra: dict
    out_dtype: str
    report: RunReport

    @property
    def n_frames(self) -> int:
        return len(self.starts)

    def create(self, path) -> CubeWriter:
        """Create the cube file at ``path`` (header, attributes, cube space allocated)."""
        n, rows, cols, _ = self.shape
        return CubeWriter(path, n, rows, cols, self.frequencies, self.look_points, self.attrs,
                          self.out_dtype, self.extra)


def _plan(raw: RawRecording, bf: Beamformer, settings: RunSettings) -> _Plan:
    starts = frame_starts(raw.n_samples, raw.sample_freq, raw.frame_rate)
    n_frames = len(starts)
    if n_frames == 0:
        raise AcamError(f"{raw.path}: {raw.n_samples} samples make no complete frame of "
                        f"{bf.frame_len} samples")
    spec = bf.spec
    digest = bf_digest(bf)
    attrs = {
        "sample_freq": raw.sample_freq, "frame_rate": raw.frame_rate, "nfft": spec.nfft,
        "n_bins": spec.n_bins, "focus": spec.grid.focus, "speed_of_sound": spec.speed_of_sound,
        "hfov": spec.grid.hfov, "vfov": spec.grid.vfov, "window": bf.window_name,
        "weights": spec.weights, "bad_mics": raw.bad_mics.astype(np.int8),
        "frame_len": bf.frame_len, "segments_per_frame": bf.n_segments,
        "source_file": os.path.abspath(raw.path), "array_name": spec.geometry.name,
        "version": __version__, "settings_digest": digest, "precision": bf.precision,
        "power_unit": "one-sided power per bin at the array centre (input units squared)",
        "tolerance": bf.tolerance, "steering": spec.formulation,
    }
    if bf.lowrank is not None:
        attrs["ranks"] = bf.lowrank.ranks.astype(np.int32)
    block = settings.block_frames if settings.block_frames is not None else (256 if bf.device == "cuda" else 64)
    if block < 1:
        raise AcamError(f"block_frames={block} must be at least 1")
    block = min(block, n_frames)
    rows, cols, n_bins = bf.cube_shape_per_frame
    extra = {"source_positions": raw.dataset("source_positions"), "mic_positions": spec.geometry.positions}
    report = RunReport(n_frames, n_frames * bf.frame_len / raw.sample_freq, bf.device, digest)
    return _Plan(starts, block, (n_frames, rows, cols, n_bins), spec.frequencies(), spec.grid.look_points(),
                 attrs, extra, settings.out_dtype, report)


def bf_digest(bf: Beamformer) -> str:
    """Digest of every setting that shapes the cube's values."""
    from ..core.digest import digest

    return digest("Beamformer", bf.spec.digest, bf.frame_rate, bf.window_name, bf.precision, bf.tolerance)


def _stream(raw, bf, starts, block, writer, bar, first: int = 0, stop: int | None = None) -> None:
    """Read, beamform and write blocks of frames ``first..stop`` (``first`` a multiple of ``block``, so
    the blocks are the serial run's).  While block i is beamformed, block i+1 is read and block i-1
    written by two I/O threads."""
    xp = bf.xp
    rows, cols, n_bins = bf.cube_shape_per_frame
    # two host buffers so one can be written while the other is filled (no page faults per block)
    host = [aligned_empty((block, rows, cols, n_bins), bf.real_dtype) for _ in range(2)]
    dev = xp.empty((block, rows, cols, n_bins), bf.real_dtype) if xp is not np else None
    stop = len(starts) if stop is None else stop
    firsts = list(range(first, stop, block))

    def read(f0):
        return raw.read_frames(starts[f0:min(f0 + block, stop)], bf.frame_len, bf.real_dtype)

    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer_pool:
        next_frames = reader.submit(read, firsts[0])
        bf.prepare()  # steering (or its factors) built once, while the first block is read
        pending = None
        for i, f0 in enumerate(firsts):
            frames = next_frames.result()
            if i + 1 < len(firsts):
                next_frames = reader.submit(read, firsts[i + 1])
            n = frames.shape[0]
            buf = host[i % 2][:n]
            if dev is None:
                bf.process(frames, out=buf)
            else:
                bf.process(xp.asarray(frames), out=dev[:n]).get(out=buf)
            if pending is not None:
                pending.result()  # block i-1 written: its buffer is free for block i+1
            pending = writer_pool.submit(writer.write, f0, buf)
            bar.update(n)
        if pending is not None:
            pending.result()
