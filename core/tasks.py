"""Fan-out of independent work (files, dataset sequences, training runs) onto Dask, or run here.

Every command that fans out takes the same two options and calls :func:`run_tasks`:

``--scheduler`` absent, ``--workers`` absent
    serial, in this process (the default; nothing to start).
``--workers N``
    a local Dask cluster of N worker processes with one thread each (``distributed.LocalCluster``);
    the dashboard address is printed when Bokeh is installed.
``--scheduler local``
    the same, one worker per usable core.
``--scheduler local-cuda``
    a local cluster of one worker per GPU (``dask_cuda.LocalCUDACluster``; needs dask-cuda).
``--scheduler tcp://HOST:8786``
    an existing Dask cluster (``dask scheduler`` + ``dask worker`` on each machine, ``dask cuda
    worker`` for one worker per GPU, or any Dask deployment).  Workers must see the same files
    under the same paths (a shared file system).

One task per unit of work, each with a unique name.  A failing task is retried ``retries`` times,
then reported by name; the others complete.  Tasks that depend on another (a student on its teacher)
name it in :class:`Task.after` and receive its result in place of the :class:`Dep` placeholder.
Outputs are atomic per task, and the callers skip finished outputs, so a re-run is idempotent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from .resources import cpu_threads
from .progress import progress_bar
from .errors import AcamError, ParameterError


@dataclass(frozen=True)
class Dep:
    """Placeholder for the result of the task named ``name`` among a task's arguments."""

    name: str


@dataclass
class Task:
    """One unit of work: ``fn(*args)``; ``name`` is unique and is how failures are reported."""

    name: str
    fn: Callable
    args: tuple = ()
    after: tuple = ()           # names of tasks whose results appear as Dep(name) in args
    units: float = 0.0          # work in the caller's unit (seconds of audio, sequences...) for the summary


@dataclass
class Report:
    """What :func:`run_tasks` did."""

    results: dict = field(default_factory=dict)     # name -> value, finished tasks
    failed: dict = field(default_factory=dict)      # name -> one-line reason
    timing: dict = field(default_factory=dict)      # name -> {"worker", "seconds", "start", "end"}
    wall: float = 0.0
    where: str = "serial"
    workers: int = 1

    def per_worker(self, tasks: list[Task] | None = None) -> list[dict]:
        """Tasks, busy seconds and throughput per worker."""
        units = {t.name: t.units for t in tasks or []}
        rows: dict[str, dict] = {}
        for name, t in self.timing.items():
            r = rows.setdefault(t["worker"], {"worker": t["worker"], "tasks": 0, "busy_s": 0.0, "units": 0.0})
            r["tasks"] += 1
            r["busy_s"] += t["seconds"]
            r["units"] += units.get(name, 0.0)
        for r in rows.values():
            r["tasks_per_s"] = r["tasks"] / self.wall if self.wall > 0 else float("nan")
            r["units_per_busy_s"] = r["units"] / r["busy_s"] if r["busy_s"] > 0 else float("nan")
        return sorted(rows.values(), key=lambda r: r["worker"])

    def raise_failures(self, what: str, total: int, hint: str = "") -> None:
        """Raise one :class:`AcamError` naming the first failed tasks, if any failed."""
        if self.failed:
            names = "; ".join(f"{k}: {v}" for k, v in list(self.failed.items())[:3])
            raise AcamError(f"{len(self.failed)} of {total} {what} failed ({names}"
                            + (" ..." if len(self.failed) > 3 else "") + ")" + hint)

    def summary(self, tasks: list[Task] | None = None, unit: str = "") -> str:
        """A few lines: totals, then one line per worker."""
        done = len(self.results)
        lines = [f"{done} task(s) done, {len(self.failed)} failed, on {self.where} in {self.wall:.1f} s"
                 + (f" ({done / self.wall:.3g} tasks/s)" if self.wall > 0 and done else "")]
        for r in self.per_worker(tasks):
            extra = (f", {r['units_per_busy_s']:.1f} {unit} per busy second"
                     if unit and r["units"] > 0 and r["busy_s"] > 0 else "")
            lines.append(f"  {r['worker']}: {r['tasks']} task(s), {r['busy_s']:.1f} s busy{extra}")
        for name, why in self.failed.items():
            lines.append(f"  FAILED {name}: {why}")
        return "\n".join(lines)


def fans_out(scheduler: str | None, workers: int | None) -> bool:
    """Whether these options ask for Dask rather than a serial run here."""
    return scheduler is not None or workers is not None


def local_threads(workers: int | None, scheduler: str | None) -> int | None:
    """CPU threads each task should use: the usable cores shared among local workers (None = all,
    for serial runs and remote clusters whose machines we do not know)."""
    if scheduler not in (None, "local"):      # remote machines, or one GPU per worker
        return None
    n = local_workers(workers, scheduler)
    return None if n is None else max(1, cpu_threads() // n)


CLUSTER_EXTRA_MESSAGE = ("running tasks on Dask (a scheduler or workers) needs the 'cluster' extra: "
                         "pip install 'acam[cluster]' (in a checkout: pip install -e '.[cluster]')")


def require_dask() -> None:
    """Raise one clear line naming the ``cluster`` extra when Dask's distributed scheduler is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise AcamError(CLUSTER_EXTRA_MESSAGE) from None


def local_workers(workers: int | None, scheduler: str | None) -> int | None:
    """Worker processes of the local cluster these options ask for (None = serial or remote); checks
    the options, and that Dask is installed when they ask for it."""
    if workers is not None and workers < 1:
        raise ParameterError("workers", workers, "must be at least 1")
    if fans_out(scheduler, workers):
        require_dask()
    if scheduler == "local":
        return workers or cpu_threads()
    if scheduler is None:
        return workers
    return None


def check_retries(retries: int) -> int:
    """``retries`` as a whole number of at least 0, else :class:`ParameterError`."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ParameterError("retries", retries, "must be at least 0")
    return retries


def run_tasks(tasks: list[Task], scheduler: str | None = None, workers: int | None = None,
              retries: int = 2, progress: bool = False, desc: str = "tasks",
              echo: Callable[[str], Any] | None = None) -> Report:
    """Run ``tasks`` serially here, on a local Dask cluster, or on the cluster at ``scheduler``.

    Results do not depend on where tasks ran: each task computes from its own arguments (seeds
    included) and writes its own output.  Returns a :class:`Report`; never raises for a failing task.
    """
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise AcamError("task names must be unique")
    known = set()
    for t in tasks:
        missing = [a for a in t.after if a not in known]
        if missing:
            raise AcamError(f"task {t.name!r} depends on {missing}, which do not come before it")
        known.add(t.name)
    check_retries(retries)
    n_local = local_workers(workers, scheduler)
    t0 = time.perf_counter()
    if scheduler is None and n_local is None:
        rep = _run_serial(tasks, retries, progress, desc)
    else:
        rep = _run_dask(tasks, scheduler, n_local, retries, progress, desc, echo or (lambda s: None))
    rep.wall = time.perf_counter() - t0
    return rep


# ----------------------------------------------------------------------------------------------- serial
def _run_serial(tasks, retries, progress, desc) -> Report:
    rep = Report(where="this process", workers=1)
    bar = progress_bar(len(tasks), progress, desc, "task")
    for t in tasks:
        bad = [a for a in t.after if a not in rep.results]
        if bad:
            rep.failed[t.name] = f"not run: {bad[0]} failed"
        else:
            args = tuple(rep.results[a.name] if isinstance(a, Dep) else a for a in t.args)
            for attempt in range(retries + 1):
                try:
                    value, meta = _timed(t.fn, *args)
                except Exception as exc:  # noqa: BLE001 - reported by name, the others go on
                    if attempt == retries:
                        rep.failed[t.name] = _one_line(exc)
                else:
                    rep.results[t.name], rep.timing[t.name] = value, meta
                    break
        bar.update(1)
    bar.close()
    return rep


# ------------------------------------------------------------------------------------------------- dask
def _run_dask(tasks, scheduler, n_local, retries, progress, desc, echo) -> Report:
    require_dask()
    from distributed import Client

    cluster, address = _start_cluster(scheduler, n_local)
    try:
        try:
            client = Client(address, timeout="20s") if cluster is None else Client(cluster)
        except (OSError, TimeoutError) as exc:
            raise AcamError(f"cannot reach the Dask scheduler at {address!r}: {_one_line(exc)}") from None
        with client:
            n_workers = len(client.scheduler_info().get("workers", {}))
            where = (f"a local Dask cluster ({n_workers} workers)" if cluster is not None
                     else f"the Dask cluster at {address} ({n_workers} workers)")
            echo(f"running {len(tasks)} task(s) on {where}" + _dashboard(client))
            rep = Report(where=where, workers=n_workers)
            bar = progress_bar(len(tasks), progress, desc, "task")
            _submit_all(client, tasks, retries, rep, bar)
            bar.close()
            # order the report as the tasks were given
            rep.results = {t.name: rep.results[t.name] for t in tasks if t.name in rep.results}
            rep.failed = {t.name: rep.failed[t.name] for t in tasks if t.name in rep.failed}
            return rep
    finally:
        if cluster is not None:
            cluster.close()


def _start_cluster(scheduler, n_local):
    """``(cluster, address)``: a local cluster this process starts (and closes), or None and the
    address of an existing scheduler."""
    from distributed import LocalCluster

    if scheduler == "local-cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise AcamError("scheduler='local-cuda' needs dask-cuda: pip install dask-cuda") from None
        cluster = LocalCUDACluster(dashboard_address=":0", silence_logs=logging.CRITICAL)  # a worker per GPU
        return cluster, cluster.scheduler_address
    if n_local is not None:
        cluster = LocalCluster(n_workers=n_local, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.CRITICAL)  # we report failures
        return cluster, cluster.scheduler_address
    return None, scheduler


def _submit_all(client, tasks, retries, rep: Report, bar) -> None:
    """Run ``tasks`` on ``client``, filling ``rep``.

    A task is submitted when what it depends on has finished, with the values themselves (small)
    rather than futures: Dask would otherwise place it on the worker that holds its dependency and
    leave the others idle.  Tasks without dependencies go in at once and are handed to whichever
    worker is free; a task whose dependency failed is reported, not run."""
    from distributed import as_completed

    pending = {t.name: t for t in tasks}
    running: dict = {}
    done = as_completed()

    def submit_ready():
        for name, t in list(pending.items()):
            if any(a in rep.failed for a in t.after):
                del pending[name]
                rep.failed[name] = f"not run: {next(a for a in t.after if a in rep.failed)} failed"
                bar.update(1)
            elif all(a in rep.results for a in t.after):
                del pending[name]
                args = tuple(rep.results[a.name] if isinstance(a, Dep) else a for a in t.args)
                fut = client.submit(_timed, t.fn, *args, retries=retries, pure=False,
                                    key=f"{name}-{os.urandom(4).hex()}")
                running[fut.key] = name
                done.add(fut)

    submit_ready()
    for fut in done:
        name = running.pop(fut.key)
        if fut.status == "finished":
            rep.results[name], rep.timing[name] = fut.result()
        else:
            rep.failed[name] = _one_line(fut.exception())
        bar.update(1)
        submit_ready()


def _dashboard(client) -> str:
    try:
        import bokeh  # noqa: F401 - the dashboard needs it
    except ImportError:
        return " (dashboard: pip install bokeh)"
    return f"; dashboard {client.dashboard_link}"


def _timed(fn, *args):
    """Run ``fn(*args)``; return its value and where and how long it ran."""
    start = time.time()
    t0 = time.perf_counter()
    value = fn(*args)
    seconds = time.perf_counter() - t0
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = f"{socket.gethostname()}:{os.getpid()}"
    return value, {"worker": worker, "seconds": seconds, "start": start, "end": start + seconds}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if isinstance(exc, AcamError):
        return msg
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" ({os.path.basename(where[0].filename)}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {msg}{at}"
