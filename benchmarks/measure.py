"""How every benchmark measures: figures with their samples (median, spread), the background load
of other processes while a block ran, timed repeats, peak memory of a child process.

Next to every timing, ``bg`` gives the CPU cores that other processes kept busy meanwhile (from
``/proc/stat``): on a shared machine, figures with a high ``bg`` are not comparable with a quiet run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from acam.beamform import backend

#: Background load (cores busy with other processes) above which a timing is flagged.
BUSY_WARNING = 0.1


@dataclasses.dataclass
class Figure:
    """One reported number: its samples (one per timed run, or a single derived value)."""

    key: str
    section: str
    label: str
    unit: str
    samples: list[float]
    note: str = ""
    other_cores: float | None = None   # CPU used by other processes meanwhile (see CpuMeter)
    steal_cores: float | None = None

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def spread(self) -> float:
        """``(max - min) / median``: 0 for a single sample."""
        m = self.median
        return (max(self.samples) - min(self.samples)) / m if m else 0.0

    def as_json(self) -> dict:
        return {"section": self.section, "label": self.label, "unit": self.unit,
                "median": self.median, "min": min(self.samples), "max": max(self.samples),
                "n": len(self.samples), "spread": self.spread, "samples": list(self.samples),
                "note": self.note, "background_cpu_cores": self.other_cores,
                "steal_cpu_cores": self.steal_cores}


class Report:
    """Figures in the order they were measured, grouped by section for the printed table."""

    def __init__(self):
        self.figures: dict[str, Figure] = {}
        self.sections: list[str] = []

    def add(self, key: str, section: str, label: str, unit: str, samples, note: str = "") -> Figure:
        other, steal = getattr(samples, "other_cores", None), getattr(samples, "steal_cores", None)
        samples = [float(s) for s in np.atleast_1d(samples)]
        fig = Figure(key, section, label, unit, samples, note, other, steal)
        self.figures[key] = fig
        if section not in self.sections:
            self.sections.append(section)
        return fig

    def __getitem__(self, key: str) -> Figure:
        return self.figures[key]

    def __contains__(self, key: str) -> bool:
        return key in self.figures

    def table(self) -> str:
        width = max(len(f.label) for f in self.figures.values())
        lines = [f"median, min..max ((max - min) / median, runs); bg: CPU cores busy with other "
                 f"processes while timed, (!) above {BUSY_WARNING:g}"]
        for section in sorted(self.sections):   # sections are numbered in reading order
            lines.append("")
            lines.append(section)
            lines.append("-" * len(section))
            for fig in (f for f in self.figures.values() if f.section == section):
                if len(fig.samples) > 1:
                    spread = (f"{_num(min(fig.samples))}..{_num(max(fig.samples))} "
                              f"({100 * fig.spread:.1f}%, n={len(fig.samples)})")
                else:
                    spread = ""
                bg = ""
                if fig.other_cores is not None:
                    bg = f"bg {fig.other_cores:.2f}" + (" (!)" if fig.other_cores > BUSY_WARNING else "")
                line = (f"  {fig.label:<{width}} {_num(fig.median):>10} {fig.unit:<9} {spread:<34} "
                        f"{bg:<12}")
                if fig.note:
                    line += f" {fig.note}"
                lines.append(line.rstrip())
        return "\n".join(lines)


def _num(x: float) -> str:
    """Four significant digits, without scientific notation for ordinary magnitudes."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    if 1e-3 <= abs(x) < 1e6:
        digits = max(0, 3 - int(math.floor(math.log10(abs(x)))))
        return f"{x:.{digits}f}"
    return f"{x:.3e}"


class CpuMeter:
    """CPU time other processes used while a block ran, as average busy cores (``other_cores``).

    On a shared machine a timing taken while something else ran is not comparable with one taken on
    a quiet machine; this figure says which is which.  It is the machine's busy time from
    ``/proc/stat`` minus this process's own CPU time (children included), over the wall time, and
    None where ``/proc/stat`` cannot be read.  ``steal_cores`` is the time the hypervisor gave
    to other guests.
    """

    other_cores: float | None = None
    steal_cores: float | None = None

    def __enter__(self) -> "CpuMeter":
        self._start = (time.perf_counter(), _system_cpu(), _own_cpu())
        return self

    def __exit__(self, *exc) -> None:
        t0, sys0, own0 = self._start
        wall, sys1, own1 = time.perf_counter() - t0, _system_cpu(), _own_cpu()
        if sys0 is not None and sys1 is not None and wall > 0:
            self.other_cores = max(0.0, (sys1[0] - sys0[0] - (own1 - own0)) / wall)
            self.steal_cores = max(0.0, (sys1[1] - sys0[1]) / wall)


def _system_cpu() -> tuple[float, float] | None:
    """Busy and stolen CPU seconds of the whole machine since boot (all cores summed)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _own_cpu() -> float:
    """CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Timing(list):
    """Time samples (seconds) or figures derived from them, with the background load they ran under."""

    def __init__(self, samples, other_cores: float | None = None, steal_cores: float | None = None):
        super().__init__(float(s) for s in samples)
        self.other_cores = other_cores
        self.steal_cores = steal_cores

    def derive(self, fn) -> "Timing":
        """``fn`` applied to every sample, keeping the load."""
        return Timing((fn(s) for s in self), self.other_cores, self.steal_cores)

    def rate(self, numerator: float) -> "Timing":
        """``numerator / t`` for every time sample (rates from times, sample by sample)."""
        return self.derive(lambda t: numerator / t)


def timed(fn, repeats: int, xp=np, warmup: int = 1) -> Timing:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls.

    On the GPU each sample is the time between two CUDA events around the call (the device's own
    clock, no host jitter), after the queue was drained.
    """
    for _ in range(warmup):
        fn()
        backend.synchronize(xp)
    if xp is not np:
        return _timed_events(fn, repeats, xp)
    samples = []
    with CpuMeter() as meter:
        for _ in range(repeats):
            backend.synchronize(xp)
            t0 = time.perf_counter()
            fn()
            backend.synchronize(xp)
            samples.append(time.perf_counter() - t0)
    return Timing(samples, meter.other_cores, meter.steal_cores)


def _timed_events(fn, repeats: int, xp) -> Timing:
    samples = []
    with CpuMeter() as meter:
        for _ in range(repeats):
            backend.synchronize(xp)
            start, end = xp.cuda.Event(), xp.cuda.Event()
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(xp.cuda.get_elapsed_time(start, end) / 1e3)
    return Timing(samples, meter.other_cores, meter.steal_cores)


def _maxrss_mib() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_watched(cmd: list[str], log: Path, poll_s: float = 0.02, env=None) -> tuple[float, int, int, str]:
    """Run ``cmd`` (stdout and stderr to ``log``), polling its peak resident set size.

    Returns ``(wall seconds, exit status, peak RSS in KiB or 0, log text)``.  The peak is the
    child's own ``VmHWM`` from ``/proc``: ``getrusage(RUSAGE_CHILDREN)`` cannot be used, because
    Linux carries the parent's high-water mark into a child that it spawns.
    """
    peak = 0
    with open(log, "w+b") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except (OSError, ValueError, IndexError):  # exiting, or no /proc
                pass
            time.sleep(poll_s)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
    return wall, proc.returncode, peak, text
