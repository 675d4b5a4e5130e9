"""Scale-out: files per second for 1, 2, 4 ... local Dask workers, against the ideal line, and the
overhead per task.

    acam bench scale [--workers 1,2,4] [--files 16] [--seconds 2] [-o OUT.json] [--smoke]
    (``acam bench all`` includes it; the command calls :func:`run_scaling`)

Workload: ``--files`` synthetic noise recordings (128 microphones, the sensor's rate and frame rate)
beamformed to 36 x 48 x 512 cubes by ``beamform run 'rec*.h5' -o DIR --workers N`` (one task per
file), every task with one CPU thread so that N workers use N cores.  For each N:

* ``wall``: the whole call, starting the local cluster included;
* ``window``: first task start to last task end (the cluster's throughput, start-up excluded);
* files/s over the window, against the ideal ``N x`` the 1-worker rate, and the ideal capped by the
  cores this machine has (beyond them, workers share cores: no gain is possible);
* the overhead per task: ``--noop`` empty tasks on the same cluster, window / tasks.

Serial runs in this process (no Dask) on one thread and on all cores (the default without
``--workers``) are the baselines.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ


def noop(i: int) -> int:
    """An empty task (importable by workers)."""
    return i


def _window(rep) -> float:
    if not rep.timing:
        return float("nan")
    starts = [t["start"] for t in rep.timing.values()]
    ends = [t["end"] for t in rep.timing.values()]
    return max(ends) - min(starts)


def _steady(rep) -> tuple[float, float]:
    """Files per second once every worker has finished its first task (its start-up: imports, the
    Numba kernels, the steering matrix, fresh memory), and the median first-task excess."""
    by: dict = {}
    for t in rep.timing.values():
        by.setdefault(t["worker"], []).append(t)
    firsts = [min(ts, key=lambda t: t["start"]) for ts in by.values()]
    warm_from = max(t["end"] for t in firsts)
    later = [t for t in rep.timing.values() if t not in firsts]
    done_after = [t for t in later if t["start"] >= warm_from - 1e-6]
    rest = [t["seconds"] for t in later]
    excess = (statistics.median(t["seconds"] for t in firsts) - statistics.median(rest)) if rest else float("nan")
    if not done_after:
        return float("nan"), excess
    span = max(t["end"] for t in done_after) - warm_from
    return (len(done_after) / span if span > 0 else float("nan")), excess


def measure(workers=(1, 2, 4), files: int = 16, seconds: float = 2.0, bins: int = 512, noop_tasks: int = 200,
            smoke: bool = False) -> dict:
    from acam.beamform import default_array, write_raw
    from acam.beamform.backend import cpu_threads
    from acam.beamform.batch import beamform_many
    from acam.core.tasks import Task, run_tasks
    from acam.beamform.pipeline import RunSettings

    if smoke:
        files, seconds, bins, noop_tasks, mics = 4, 0.5, 16, 10, 16
        workers = tuple(w for w in workers if w <= 2) or (1,)
    else:
        mics = 128
    fs, rate = SAMPLE_FREQ, FRAME_RATE
    settings = RunSettings(bins=bins, threads=1, rows=6 if smoke else 36, cols=8 if smoke else 48)
    rng = np.random.default_rng(0)
    out: dict = {"files": files, "seconds_each": seconds, "bins": bins, "mics": mics,
                 "cores": cpu_threads(), "threads_per_task": 1, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raws = []
        for i in range(files):
            p = tmp / f"rec{i:03d}.h5"
            write_raw(p, rng.standard_normal((int(seconds * fs), mics)).astype(np.float32), fs,
                      default_array().positions[:mics], rate)
            raws.append(str(p))
        # serial baseline (twice: the first warms the steering cache and the Numba kernels)
        for attempt in range(2):
            d = tmp / f"serial{attempt}"
            d.mkdir()
            t0 = time.perf_counter()
            res = beamform_many(raws, str(d), settings)
            wall = time.perf_counter() - t0
        assert not res.report.failed, res.report.failed
        out["serial"] = {"wall_s": wall, "files_per_s": files / wall}
        d = tmp / "serial_all_cores"          # the default without Dask: one process, every core
        d.mkdir()
        t0 = time.perf_counter()
        beamform_many(raws, str(d), replace(settings, threads=None))
        out["serial_all_cores"] = {"wall_s": time.perf_counter() - t0}
        out["serial_all_cores"]["files_per_s"] = files / out["serial_all_cores"]["wall_s"]
        for n in workers:
            d = tmp / f"w{n}"
            d.mkdir()
            t0 = time.perf_counter()
            res = beamform_many(raws, str(d), settings, workers=n)
            wall = time.perf_counter() - t0
            if res.report.failed:
                raise RuntimeError(f"scaling run with {n} workers failed: {res.report.failed}")
            window = _window(res.report)
            steady, first_excess = _steady(res.report)
            nop = run_tasks([Task(f"noop{i}", noop, (i,)) for i in range(noop_tasks)], workers=n)
            out["rows"].append({
                "workers": n, "wall_s": wall, "window_s": window, "files_per_s": files / window,
                "steady_files_per_s": steady, "first_task_excess_s": first_excess,
                "startup_s": wall - window, "busy_s": sum(t["seconds"] for t in res.report.timing.values()),
                "overhead_ms_per_task": 1000 * _window(nop) / noop_tasks,
                "tasks_per_worker": [r["tasks"] for r in res.report.per_worker()],
            })
    for key in ("files_per_s", "steady_files_per_s"):
        one = out["rows"][0][key] / out["rows"][0]["workers"]
        for r in out["rows"]:
            r[f"ideal_{key}"] = one * r["workers"]
            r[f"ideal_on_cores_{key}"] = one * min(r["workers"], out["cores"])
            r[f"efficiency_on_cores_{key}"] = r[key] / r[f"ideal_on_cores_{key}"]
    out["overhead_ms_per_task"] = statistics.median(r["overhead_ms_per_task"] for r in out["rows"])
    return out


def table(r: dict) -> str:
    lines = [f"  {r['files']} files x {r['seconds_each']:g} s, {r['mics']} mics, {r['bins']} bins, one thread per "
             f"task, {r['cores']} cores",
             f"  serial in this process (warm): {r['serial']['files_per_s']:.2f} files/s on one thread, "
             f"{r['serial_all_cores']['files_per_s']:.2f} files/s on all cores (no Dask)",
             "  workers | files/s  ideal  eff.   | warm files/s  ideal  eff.  | start-up s  1st task +s  overhead ms/task"]
    for x in r["rows"]:
        lines.append(
            f"  {x['workers']:7d} | {x['files_per_s']:7.2f}  {x['ideal_on_cores_files_per_s']:5.2f}  "
            f"{x['efficiency_on_cores_files_per_s']:4.0%}  | {x['steady_files_per_s']:12.2f}  "
            f"{x['ideal_on_cores_steady_files_per_s']:5.2f}  {x['efficiency_on_cores_steady_files_per_s']:4.0%} | "
            f"{x['startup_s']:10.2f}  {x['first_task_excess_s']:11.2f}  {x['overhead_ms_per_task']:16.2f}")
    lines.append("  ideal = N x the 1-worker rate, capped at the cores; warm = after every worker's first task")
    return "\n".join(lines)


def run_scaling(*, workers=(1, 2, 4), files: int = 16, seconds: float = 2.0, output: str | None = None,
                smoke: bool = False, command: str = "acam bench scale") -> dict:
    """Measure, print the table, and write the JSON document to ``output`` (when given)."""
    import datetime

    from acam.core.errors import AcamError

    from .machine import machine_info

    if not workers or any(int(w) < 1 for w in workers):
        raise AcamError(f"workers={workers} must be positive worker counts")
    from acam.core.checks import number
    from acam.core.safeio import check_output

    number("files", files, lo=1, integer=True)
    number("seconds", seconds, lo=0, lo_open=True)
    if output:
        check_output(output)
    r = measure(tuple(int(w) for w in workers), files, seconds, smoke=smoke)
    print("Scale-out (local Dask workers)\n" + table(r))
    doc = {"schema": 1, "command": command,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": "cpu", "machine": machine_info("cpu"), "figures": {}, "scaling": r}
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        from acam.core.safeio import write_text

        write_text(output, json.dumps(doc, indent=2, default=str) + "\n")
        print(f"wrote {output}")
    return doc
