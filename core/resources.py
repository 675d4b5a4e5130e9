"""What this machine offers a process: usable cores, available memory, and the check that refuses
an allocation the machine cannot hold *before* it is attempted."""

from __future__ import annotations

import os

from .errors import AcamError


def cpu_threads() -> int:
    """Cores this process may run on (respects affinity masks and cgroup-pinned CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
