"""Progress on every long wait: a tqdm bar on a terminal, periodic plain log lines elsewhere.

Every step that can take more than a few seconds (beamforming a file, tasks of a batch, training
batches, geometry reports, the layout optimiser) reports through :func:`progress_bar`:

- ``enabled`` false: a do-nothing stand-in (the library's default; nothing is printed);
- ``enabled`` true and standard error a terminal: a tqdm bar;
- ``enabled`` true and standard error not a terminal (a log file, a cluster job, a pipe): one plain
  line every ``ACAM_PROGRESS_SECONDS`` seconds (default 30) such as
  ``[14:02:11] resnet50 epoch 3/10: 412/1200 batches (34%), 2 min elapsed, about 4 min left, loss=1.92``
  and a last line when it ends - only for waits long enough to have printed one, so short steps
  stay silent.

The commands' ``--progress/--no-progress`` default to on (:func:`wanted`).
"""

from __future__ import annotations

import os
import sys
import time

DEFAULT_SECONDS = 30.0


class _NoBar:
    """Stands in for a bar when progress is off."""

    n = 0

    def update(self, n=1): pass

    def set_postfix(self, refresh=True, **kw): pass

    def set_description(self, desc=None, refresh=True): pass

    def close(self): pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _plural(unit: str) -> str:
    if unit.endswith("y") and unit[-2:-1] not in tuple("aeiou"):
        return unit[:-1] + "ies"
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class LogProgress:
    """Plain progress lines on ``stream``, at most one every ``interval`` seconds (see module docs)."""

    def __init__(self, total: int, desc: str, unit: str, interval: float, stream=None, initial: int = 0):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.stream = stream if stream is not None else sys.stderr
        self.n = self.initial = initial
        self.postfix: dict = {}
        self.printed = False
        self.closed = False
        self.t0 = self.last = time.monotonic()

    def update(self, n=1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self._emit(now)

    def set_postfix(self, refresh=True, **kw) -> None:
        self.postfix = {k: v for k, v in kw.items() if v is not None}

    def set_description(self, desc=None, refresh=True) -> None:
        self.desc = desc or ""

    def line(self, now: float | None = None, final: bool = False) -> str:
        now = time.monotonic() if now is None else now
        elapsed = now - self.t0
        count = f"{self.n}/{self.total} {_plural(self.unit)}" if self.total else f"{self.n} {_plural(self.unit)}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        text = f"{self.desc}: {count}, {_duration(elapsed)} elapsed"
        done = self.n - self.initial
        if final:
            text += ", done" if self.total and self.n >= self.total else ", stopped"
        elif self.total and 0 < done and self.n < self.total and elapsed > 0:
            text += f", about {_duration((self.total - self.n) * elapsed / done)} left"
        if self.postfix:
            text += ", " + " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return f"[{time.strftime('%H:%M:%S')}] {text}"

    def _emit(self, now: float, final: bool = False) -> None:
        print(self.line(now, final), file=self.stream, flush=True)
        self.printed = True
        self.last = now

    def close(self) -> None:
        if self.printed and not self.closed:
            self._emit(time.monotonic(), final=True)
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def interval_seconds() -> float:
    """Seconds between plain progress lines: ``ACAM_PROGRESS_SECONDS`` (default 30)."""
    try:
        value = float(os.environ.get("ACAM_PROGRESS_SECONDS", DEFAULT_SECONDS))
    except ValueError:
        return DEFAULT_SECONDS
    return value if value >= 0 else DEFAULT_SECONDS


def progress_bar(total: int, enabled: bool, desc: str, unit: str, initial: int = 0, leave: bool = True):
    """Progress over ``total`` ``unit``s: a tqdm bar on a terminal, plain log lines elsewhere, or a
    do-nothing stand-in when ``enabled`` is false (see the module docs)."""
    if not enabled:
        return _NoBar()
    stream = sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return LogProgress(total, desc, unit, interval_seconds(), stream, initial)
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, leave=leave, initial=initial)


def wanted(flag: bool | None) -> bool:
    """The commands' ``--progress/--no-progress``: on unless switched off (a bar on a terminal,
    plain lines in a log)."""
    return flag is not False
