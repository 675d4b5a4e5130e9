"""Many recordings at once: ``beamform run 'recordings/*.h5' -o cubes/`` here or on a Dask cluster.

Each recording is one task (:mod:`acam.core.tasks`); with ``frames_per_task`` a long recording is
split into ranges of frames, each a task that writes its range straight into its place in one
pre-allocated cube file, which is renamed into place only when every range has succeeded.  Ranges
are whole multiples of the block size, so every block is computed exactly as in a serial run and the
cube is byte-for-byte the serial one.

One rule for existing outputs, for one recording (:func:`beamform_one`) and for many: a cube that
exists is skipped when it is up to date - made with the same settings (its ``settings_digest``),
with as many frames, from the same recording, and no older than that recording - and is otherwise
reported and left alone unless ``overwrite`` is set.
"""

from __future__ import annotations

import contextlib
import glob
import os
from dataclasses import asdict, dataclass, field, replace

import h5py

from ..core.progress import progress_bar
from ..core.tasks import Report, Task, check_retries, local_threads, local_workers, run_tasks
from ..core.checks import number
from ..core.errors import AcamError, OutputExists
from ..core.safeio import check_output, part_path, reads_inputs, remove_stale_parts, write_failure
from . import backend
from .geometry import ArrayGeometry
from .io import CubeWriter, RawRecording
from .pipeline import RunSettings, _plan, _stream, beamform_file, build_beamformer


def expand_inputs(patterns) -> list[str]:
    """Paths and glob patterns -> the existing files, in the order given (each pattern sorted)."""
    out: list[str] = []
    for p in patterns:
        hits = sorted(glob.glob(os.path.expanduser(p))) if glob.has_magic(p) else [p]
        if not hits:
            raise AcamError(f"no file matches {p!r}")
        out.extend(h for h in hits if h not in out)
    return out


def is_batch(raws, output: str | None, scheduler: str | None = None, workers: int | None = None,
             frames_per_task: int | None = None) -> bool:
    """Whether a run goes through :func:`beamform_many` (several recordings, a cluster, tasks of
    frames, or an output folder) rather than :func:`beamform_one`."""
    return (len(raws) > 1 or scheduler is not None or workers is not None or frames_per_task is not None
            or (output is not None and (os.path.isdir(output) or output.endswith(os.sep))))


def default_output(path: str, suffix: str = ".cube.h5") -> str:
    """The file made from ``path`` when no output is named: its name with ``suffix`` beside it (the
    cube of a recording; ``.png`` for the picture of a cube)."""
    return os.path.splitext(path)[0] + suffix


def check_batch_output(output: str | None) -> str:
    """The output folder of a batch: named, and not a file."""
    if output is None:
        raise AcamError("several recordings (or a scheduler, workers or frames per task) need an output folder")
    if os.path.exists(output) and not os.path.isdir(output):
        raise AcamError(f"output {output!r} is a file; several recordings need a folder")
    return output


def output_paths(raws: list[str], out_dir: str) -> list[str]:
    """``out_dir/<name>.cube.h5`` for each recording; two recordings may not share a name."""
    outs = [os.path.join(out_dir, os.path.splitext(os.path.basename(r))[0] + ".cube.h5") for r in raws]
    seen: dict[str, str] = {}
    for r, o in zip(raws, outs):
        if o in seen:
            raise AcamError(f"{seen[o]!r} and {r!r} would both write {o!r}; rename one")
        seen[o] = r
    return outs


@dataclass
class ManyResult:
    report: Report
    tasks: list
    skipped: list            # outputs already up to date
    outputs: dict            # raw -> cube written this time
    seconds_of_audio: float  # beamformed this time
    exist: list = field(default_factory=list)    # outputs left alone: they exist and are not current


def beamform_many(raws: list[str], out_dir: str, settings: RunSettings = RunSettings(),
                  array: ArrayGeometry | None = None, scheduler: str | None = None,
                  workers: int | None = None, frames_per_task: int | None = None, retries: int = 2,
                  overwrite: bool = False, progress: bool = False, echo=None) -> ManyResult:
    """Beamform each of ``raws`` into ``out_dir`` (made if missing, once every option is checked);
    failures are reported per file, never raised."""
    number("frames_per_task", frames_per_task, lo=1, integer=True, none_ok=True)
    check_retries(retries)
    if settings.threads is None:      # also checks workers
        settings = replace(settings, threads=local_threads(workers, scheduler))
    backend.check_gpu_workers(settings.device, local_workers(workers, scheduler))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise AcamError(f"output {out_dir!r} is a file; several recordings need a folder")
    outs = output_paths(raws, out_dir)
    for out in outs:                  # the workers cannot see the inputs this process read
        if os.path.exists(out):
            check_output(out, raws)
    os.makedirs(out_dir, exist_ok=True)
    batch = _Batch()
    for raw_path, out in zip(raws, outs):
        batch.add(raw_path, out, raws, settings, array, overwrite, frames_per_task)
    try:
        rep = run_tasks(batch.tasks, scheduler, workers, retries, progress, "beamform", echo) if batch.tasks \
            else Report()
    except BaseException:           # no cluster, interrupted...: no half-made cube stays behind
        for tmp, _, _ in batch.parts.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    outputs = batch.finish(raws, outs, rep)
    audio = sum(t.units for t in batch.tasks if t.name in rep.results)
    rep.failed.update(batch.pre_failed)
    return ManyResult(rep, batch.tasks, batch.skipped, outputs, audio, batch.exist)


@dataclass
class _Batch:
    """The tasks of :func:`beamform_many`, and what was settled before any ran."""

    tasks: list = field(default_factory=list)
    skipped: list = field(default_factory=list)       # outputs up to date
    parts: dict = field(default_factory=dict)         # name -> (shared .part file, output, range task names)
    pre_failed: dict = field(default_factory=dict)    # name -> reason, refused before running
    exist: list = field(default_factory=list)         # outputs that exist and are not current

    def add(self, raw_path, out, raws, settings, array, overwrite, frames_per_task) -> None:
        """Plan one recording: skip it, refuse it, or add one task (or one task per range of frames)."""
        name = os.path.basename(raw_path)
        try:
            with RawRecording.open(raw_path, settings.frame_rate, array) as raw:
                bf = build_beamformer(raw, settings)
                plan = _plan(raw, bf, settings)
            if not overwrite and existing_is_current(out, raw_path, plan.report.settings_digest, plan.n_frames):
                self.skipped.append(out)
                return
        except AcamError as exc:
            self.pre_failed[name] = str(exc)
            if isinstance(exc, OutputExists):
                self.exist.append(out)
            return
        seconds = plan.report.seconds_of_audio
        if frames_per_task is None or frames_per_task >= plan.n_frames:
            self.tasks.append(Task(name, _file_task, (raw_path, out, settings, array), units=seconds))
            return
        # ranges of whole blocks, written into one pre-allocated file by as many tasks
        step = -(-frames_per_task // plan.block) * plan.block
        tmp = _preallocate(plan, out, raws)
        names = []
        for f0 in range(0, plan.n_frames, step):
            f1 = min(f0 + step, plan.n_frames)
            names.append(f"{name}[{f0}:{f1}]")
            self.tasks.append(Task(names[-1], _range_task, (raw_path, tmp, settings, array, f0, f1),
                                   units=seconds * (f1 - f0) / plan.n_frames))
        self.parts[name] = (tmp, out, names)

    def finish(self, raws, outs, rep: Report) -> dict:
        """Rename each split file into place when every range is in (else remove it); ``{raw: cube}``
        written this time."""
        outputs = {}
        for raw_path, out in zip(raws, outs):
            name = os.path.basename(raw_path)
            if name in self.parts:
                tmp, out, names = self.parts[name]
                if any(n in rep.failed for n in names):
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    continue
                os.replace(tmp, out)
                outputs[raw_path] = out
            elif name in rep.results:
                outputs[raw_path] = out
        return outputs


def _preallocate(plan, out: str, raws) -> str:
    """The ``.part`` file beside ``out`` that the range tasks write into, made at its full size."""
    check_output(out, raws)
    remove_stale_parts(out)
    tmp = part_path(out)
    try:
        plan.create(tmp).close()
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        reason = write_failure(exc)
        if reason:
            raise AcamError(f"cannot write {out}: {reason}") from None
        raise
    return tmp


def _up_to_date(out: str, raw_path: str, digest: str, n_frames: int) -> bool:
    try:
        with h5py.File(out, "r") as f:
            same = (f.attrs.get("settings_digest") == digest and f["cube"].shape[0] == n_frames
                    and f.attrs.get("source_file") == os.path.abspath(raw_path))
    except (OSError, KeyError, TypeError):
        return False
    return same and os.path.getmtime(out) >= os.path.getmtime(raw_path)


def existing_is_current(out: str, raw_path: str, digest: str, n_frames: int) -> bool:
    """The rule for an output that may exist: False when there is none (make it), True when it is up
    to date (skip it); an :class:`AcamError` when it exists but is not (see the module docs)."""
    if not os.path.lexists(out):
        return False
    check_output(out, (raw_path,))      # an input of the command, a FIFO or a folder: refused, unopened
    if _up_to_date(out, raw_path, digest, n_frames):
        return True
    raise OutputExists(out, "exists and was made with other settings or from another or a newer recording")


@reads_inputs
def beamform_one(raw_path, out, settings: RunSettings = RunSettings(), array: ArrayGeometry | None = None,
                 overwrite: bool = False, progress: bool = False):
    """One recording, with the same rule for an existing output as :func:`beamform_many`: returns
    the :class:`~acam.beamform.pipeline.RunReport`, or None when ``out`` was up to date (skipped)."""
    if not overwrite:
        with RawRecording.open(raw_path, settings.frame_rate, array) as raw:
            plan = _plan(raw, build_beamformer(raw, settings), settings)
        if existing_is_current(os.fspath(out), os.fspath(raw_path), plan.report.settings_digest, plan.n_frames):
            return None
    return beamform_file(raw_path, out, settings, array, progress=progress)


def _file_task(raw_path, out, settings, array):
    return asdict(beamform_file(raw_path, out, settings, array))


def _range_task(raw_path, tmp, settings, array, first, stop):
    """Frames ``first..stop`` of one recording into the shared cube file ``tmp``."""
    with RawRecording.open(raw_path, settings.frame_rate, array) as raw:
        bf = build_beamformer(raw, settings)
        plan = _plan(raw, bf, settings)
        writer = CubeWriter.attach(tmp)
        try:
            if writer.shape != plan.shape:
                raise AcamError(f"{tmp}: cube of shape {writer.shape}, expected {plan.shape}")
            _stream(raw, bf, plan.starts, plan.block, writer, progress_bar(0, False, "", ""), first, stop)
        finally:
            writer.close()
    return stop - first
