"""What the figures were measured on: CPU name and matrix-unit features, BLAS libraries and their
kernels, library versions, GPU, the checked-out commit.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np

import acam
from acam.beamform import backend

#: Where the installed package lives: the repository itself in an editable install, so the
#: benchmark can record the checked-out commit; inside site-packages git finds nothing.
PACKAGE_DIR = Path(acam.__file__).resolve().parent


def machine_info(device: str) -> dict:
    """What the figures were measured on (call last: every library is loaded by then)."""
    import h5py
    import numba
    import scipy
    import threadpoolctl

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpuinfo_field("model name"),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": backend.cpu_threads(),
        "memory_gib": _meminfo_gib(),
        "versions": {"acam": acam.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "numba": numba.__version__, "h5py": h5py.__version__,
                     "threadpoolctl": threadpoolctl.__version__},
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "threadpools": threadpoolctl.threadpool_info(),
        "device": device,
        "git_commit": _git_commit(),
        **cpu_description(),
    }
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel Numba code ran
        info["numba_threading_layer"] = None
    if device == "cuda":
        cp = backend.xp_for("cuda")
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        info["gpu"] = {"name": props["name"].decode(errors="replace"),
                       "memory_gib": props["totalGlobalMem"] / 2 ** 30,
                       "cuda_runtime": cp.cuda.runtime.runtimeGetVersion()}
        info["versions"]["cupy"] = cp.__version__
    return info


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _meminfo_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    """The checked-out commit (read-only query), with ``+dirty`` when the tree has changes."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=PACKAGE_DIR, capture_output=True,
                             text=True, check=True).stdout.strip()
        if Path(top).resolve() != PACKAGE_DIR:  # an installed copy inside some other repository
            return None
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


def cpu_description() -> dict:
    """The CPU's identity and matrix units, and the BLAS kernels NumPy's OpenBLAS runs on it."""
    from threadpoolctl import threadpool_info

    from acam.core.cpu import cpu_info, matrix_features, openblas_coretype_for

    info = cpu_info()
    blas = [p.get("architecture") for p in threadpool_info() if p.get("internal_api") == "openblas"]
    return {"cpu_vendor": info["vendor"], "cpu_family": info["family"], "cpu_model_number": info["model"],
            "matrix_features": matrix_features(info), "openblas_kernels": blas[0] if blas else None,
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
            "openblas_kernels_preferred": openblas_coretype_for(info)}


def blas_warning(desc: dict) -> str | None:
    """A line when OpenBLAS runs weaker kernels than this CPU could (an environment override)."""
    want, got = desc.get("openblas_kernels_preferred"), desc.get("openblas_kernels")
    if want and got and got.lower() != want.lower():
        return (f"warning: OpenBLAS runs its {got} kernels (OPENBLAS_CORETYPE={desc.get('openblas_coretype_env')}) "
                f"on a CPU that runs its {want} kernels about twice as fast: the exact path is measured "
                f"below its best; unset OPENBLAS_CORETYPE or set it to {want}")
    return None
