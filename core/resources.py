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


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _meminfo_available() -> int | None:
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroup_v2_available() -> int | None:
    """Room left under the memory limits of this process's cgroup and its parents (v2)."""
    text = _read("/proc/self/cgroup") or ""
    rel = next((ln[3:] for ln in text.splitlines() if ln.startswith("0::")), None)
    if rel is None:
        return None
    best = None
    d = os.path.join("/sys/fs/cgroup", rel.strip().lstrip("/"))
    while d.startswith("/sys/fs/cgroup"):
        limit = (_read(os.path.join(d, "memory.max")) or "max").strip()
        used = _read(os.path.join(d, "memory.current"))
        if limit.isdigit() and used is not None and used.strip().isdigit():
            stat = _read(os.path.join(d, "memory.stat")) or ""
            cache = sum(int(ln.split()[1]) for ln in stat.splitlines()
                        if ln.split()[:1] == ["inactive_file"])    # page cache the kernel can drop
            room = max(0, int(limit) - int(used) + cache)
            best = room if best is None else min(best, room)
        if d == "/sys/fs/cgroup":
            break
        d = os.path.dirname(d)
    return best


def _cgroup_v1_available() -> int | None:
    """Room left under the v1 memory controller's limit (this process's cgroup, else the root)."""
    text = _read("/proc/self/cgroup") or ""
    rel = None
    for ln in text.splitlines():
        parts = ln.split(":", 2)
        if len(parts) == 3 and "memory" in parts[1].split(","):
            rel = parts[2]
    best = None
    for d in dict.fromkeys([os.path.join("/sys/fs/cgroup/memory", (rel or "").strip().lstrip("/")),
                            "/sys/fs/cgroup/memory"]):
        limit = (_read(os.path.join(d, "memory.limit_in_bytes")) or "").strip()
        used = (_read(os.path.join(d, "memory.usage_in_bytes")) or "").strip()
        if not limit.isdigit() or not used.isdigit() or int(limit) >= 1 << 60:   # huge = no limit
            continue
        room = max(0, int(limit) - int(used))
        best = room if best is None else min(best, room)
    return best


def _rlimit_available() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - non-Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    status = _read("/proc/self/status") or ""
    vm = next((int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("VmSize:")), 0)
    return max(0, soft - vm)


def available_memory() -> int | None:
    """Bytes this process can still allocate: the least of the kernel's ``MemAvailable``, the room
    under the cgroup memory limit (v2 or v1) and under ``ulimit -v``; None when none is known."""
    vals = [v for v in (_meminfo_available(), _cgroup_v2_available(), _cgroup_v1_available(),
                        _rlimit_available()) if v is not None]
    return min(vals) if vals else None


def human_bytes(n: float) -> str:
    """``1.5 GiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_allocation(nbytes: float, what: str) -> None:
    """Raise :class:`AcamError` naming ``what`` and its size when ``nbytes`` cannot be allocated
    now (more than the memory available, see :func:`available_memory`).  Call before allocating."""
    nbytes = float(nbytes)
    if nbytes != nbytes or nbytes < 0:
        raise AcamError(f"{what}: impossible size {nbytes}")
    avail = available_memory()
    if nbytes >= 2 ** 62 or (avail is not None and nbytes > avail):
        have = f"the {human_bytes(avail)} available" if avail is not None else "any machine's memory"
        raise AcamError(f"{what} needs {human_bytes(nbytes)}, more than {have}")
