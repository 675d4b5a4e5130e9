"""Whole files: stream a raw recording through a :class:`Beamformer` into a cube file."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import __version__
from ..core.progress import progress_bar
from ..core.errors import AcamError, ParameterError
from ..core.safeio import reads_inputs
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

    def __post_init__(self):
        # counts that would fail late (or allocate nonsense) are refused here, naming the parameter
        for name in ("bins", "threads"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool) and isinstance(v, int) and v < 1:
                raise ParameterError(name, v, "must be at least 1")


@dataclass
class RunReport:
    """What a run did, and where its time went: ``setup_s`` (opening, planning, the steering build or
    factorisation, allocating the cube, up to the first block's beamforming), ``compute_s`` (the
    beamforming of every block: :meth:`Beamformer.process` alone) and ``total_s`` (the whole call)."""

    n_frames: int
    seconds_of_audio: float
    device: str
    settings_digest: str
    setup_s: float = float("nan")
    compute_s: float = float("nan")
    total_s: float = float("nan")
    precision: str = "single"
    note: str | None = None          # e.g. why another precision ran than the one asked for

    def rates(self) -> str:
        """One line: the beamforming's own rate (from ``compute_s`` only) and the set-up time apart."""
        return rate_line(self.n_frames, self.seconds_of_audio, self.compute_s, self.setup_s, self.total_s)


def rate_line(n_frames: int, seconds_of_audio: float, compute_s: float, setup_s: float, total_s: float) -> str:
    """``compute: N frames in C s = F frames/s (R x real time); set-up S s; I/O and waits W s``.

    The frame rate and real-time factor come from ``compute_s`` alone, never from the wall time."""
    if not compute_s > 0:
        return f"compute: {n_frames} frames (no timing); set-up {setup_s:.2f} s"
    rest = total_s - setup_s - compute_s
    return (f"compute: {n_frames} frames in {compute_s:.2f} s = {n_frames / compute_s:.1f} frames/s "
            f"({seconds_of_audio / compute_s:.1f}x real time); set-up {setup_s:.2f} s; "
            f"I/O and waits {max(rest, 0.0):.2f} s")


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
        _check_memory(spec, s)
        bf = Beamformer(spec, raw.frame_rate, s.window, s.device, s.precision, s.threads, s.tolerance)
    _RECENT[key] = bf                  # most recent last; recordings of one array share the steering
    while len(_RECENT) > 2:
        _RECENT.pop(next(iter(_RECENT)))
    return bf


def _check_memory(spec: SteeringSpec, s: RunSettings) -> None:
    """Refuse settings whose steering matrix and block buffers this machine cannot hold, before
    anything is allocated (``bins=10**9`` fails here, not after taking gigabytes)."""
    from ..core.resources import check_allocation
    from .backend import resolve_device

    real = 4 if s.precision == "single" else 8
    block = s.block_frames or (GPU_BLOCK_FRAMES if resolve_device(s.device) == "cuda" else CPU_BLOCK_FRAMES)
    pixels, mics = spec.grid.n_pixels, len(spec.active)
    steering = spec.n_bins * pixels * mics * 2 * real if resolve_device(s.device) == "cpu" else 0
    check_allocation(steering + 2 * block * pixels * spec.n_bins * real + spec.n_bins * 8,
                     f"beamforming {spec.n_bins} bins x {pixels} pixels x {mics} microphones")


#: Frames per block (the cube buffers of two blocks are held: 2 x 453 MiB at 128 frames of 36 x 48 x 512
#: float32).  On a 2-core Zen 5 the compute step reached 49% / 59% / 64% of the complex64 GEMM peak at
#: 64 / 128 / 256 frames (the per-bin products grow wider); 128 trades +0.6 GB of memory for ~20%.
CPU_BLOCK_FRAMES = 128
GPU_BLOCK_FRAMES = 256

_RECENT: dict = {}   # the last beamformers built in this process (their steering matrices are built once)


@reads_inputs
def beamform_file(raw_path, cube_path, settings: RunSettings = RunSettings(),
                  array: ArrayGeometry | None = None, progress: bool = False) -> RunReport:
    """Beamform every complete frame of ``raw_path`` into the cube file ``cube_path``.

    Memory stays bounded by the block size whatever the recording's length; the output appears only
    when complete.
    """
    t0 = time.perf_counter()
    with RawRecording.open(raw_path, settings.frame_rate, array) as raw:
        bf = build_beamformer(raw, settings)
        bf.progress = progress
        plan = _plan(raw, bf, settings)
        bar = progress_bar(plan.n_frames, progress, os.path.basename(os.fspath(raw_path)), "frame")
        with atomic_output(cube_path, protect=(raw.path,)) as tmp:
            writer = plan.create(tmp)
            try:
                times = _stream(raw, bf, plan.starts, plan.block, writer, bar)
            finally:
                writer.close()
                bar.close()
    rep = plan.report
    rep.setup_s, rep.compute_s = times["first_compute_at"] - t0, times["compute_s"]
    rep.total_s = time.perf_counter() - t0
    return rep


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
    unit = raw.attr("unit")            # the recording's unit ("Pa"): lets pictures give dB SPL
    if unit is not None:
        attrs["input_unit"] = unit.decode() if isinstance(unit, bytes) else str(unit)
    if bf.precision != bf.precision_requested:
        attrs["precision_requested"] = bf.precision_requested
    if bf.lowrank is not None:
        attrs["ranks"] = bf.lowrank.ranks.astype(np.int32)
    block = settings.block_frames if settings.block_frames is not None else (
        GPU_BLOCK_FRAMES if bf.device == "cuda" else CPU_BLOCK_FRAMES)
    if block < 1:
        raise AcamError(f"block_frames={block} must be at least 1")
    block = min(block, n_frames)
    rows, cols, n_bins = bf.cube_shape_per_frame
    extra = {"source_positions": raw.dataset("source_positions"), "mic_positions": spec.geometry.positions}
    report = RunReport(n_frames, n_frames * bf.frame_len / raw.sample_freq, bf.device, digest, precision=bf.precision,
                       note=bf.precision_note)
    return _Plan(starts, block, (n_frames, rows, cols, n_bins), spec.frequencies(), spec.grid.look_points(),
                 attrs, extra, settings.out_dtype, report)


def bf_digest(bf: Beamformer) -> str:
    """Digest of every setting that shapes the cube's values."""
    from ..core.digest import digest

    return digest("Beamformer", bf.spec.digest, bf.frame_rate, bf.window_name, bf.precision, bf.tolerance)


def _stream(raw, bf, starts, block, writer, bar, first: int = 0, stop: int | None = None) -> dict:
    """Read, beamform and write blocks of frames ``first..stop`` (``first`` a multiple of ``block``, so
    the blocks are the serial run's).  While block i is beamformed, block i+1 is read and block i-1
    written by two I/O threads (on the GPU: :func:`acam.beamform.gpu_pipeline.stream_gpu`).

    Returns ``{"compute_s": seconds in Beamformer.process, "first_compute_at": perf_counter() when
    the first block's beamforming began}``."""
    xp = bf.xp
    if xp is not np:
        from .gpu_pipeline import stream_gpu

        return stream_gpu(raw, bf, starts, block, writer, bar, first, stop)
    rows, cols, n_bins = bf.cube_shape_per_frame
    # two host buffers so one can be written while the other is filled (no page faults per block)
    host = [aligned_empty((block, rows, cols, n_bins), bf.real_dtype) for _ in range(2)]
    stop = len(starts) if stop is None else stop
    firsts = list(range(first, stop, block))

    def read(f0):
        return raw.read_frames(starts[f0:min(f0 + block, stop)], bf.frame_len, bf.real_dtype)

    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer_pool:
        next_frames = reader.submit(read, firsts[0])
        touched = writer_pool.submit(_first_touch, host)   # page faults off the first block's clock
        bf.prepare()  # steering (or its factors) built once, while the first block is read
        touched.result()
        pending = None
        compute, first_at = 0.0, None
        for i, f0 in enumerate(firsts):
            frames = next_frames.result()
            if i + 1 < len(firsts):
                next_frames = reader.submit(read, firsts[i + 1])
            n = frames.shape[0]
            buf = host[i % 2][:n]
            t0 = time.perf_counter()
            first_at = t0 if first_at is None else first_at
            bf.process(frames, out=buf)
            compute += time.perf_counter() - t0
            if pending is not None:
                pending.result()  # block i-1 written: its buffer is free for block i+1
            pending = writer_pool.submit(writer.write, f0, buf)
            bar.update(n)
        if pending is not None:
            pending.result()
    return {"compute_s": compute, "first_compute_at": first_at}


def _first_touch(arrays) -> None:
    """Fault in every page of fresh buffers (one write per 4 KiB), so that the kernel's page-fault work
    overlaps the steering build instead of slowing the first block's beamforming."""
    for a in arrays:
        flat = a.reshape(-1).view(np.uint8)
        flat[::4096] = 0
