"""What the CPU offers the hot path: its name, the matrix-unit features the reduced-precision
steering product uses, and the BLAS kernels OpenBLAS should pick on CPUs it does not know yet.

Imports nothing but the standard library: :func:`prefer_openblas_kernels` runs from ``acam/__init__``
before NumPy is loaded (OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when it is loaded).
"""

from __future__ import annotations

import functools
import os

#: Matrix-unit features read from the ``flags`` line of ``/proc/cpuinfo``.
MATRIX_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma")
#: AVX-512 subsets OpenBLAS's SkylakeX kernels need.
_SKYLAKEX_NEEDS = ("avx512f", "avx512bw", "avx512vl", "avx512dq")


@functools.lru_cache(maxsize=1)
def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """Vendor, family, model, name and flags of the first processor listed (empty where unreadable)."""
    info: dict = {"vendor": None, "family": None, "model": None, "name": None, "flags": frozenset()}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if not key and info["name"]:            # end of the first processor's block
                    break
                if key == "vendor_id":
                    info["vendor"] = value
                elif key == "cpu family" and value.isdigit():
                    info["family"] = int(value)
                elif key == "model" and value.isdigit():
                    info["model"] = int(value)
                elif key == "model name":
                    info["name"] = value
                elif key == "flags":
                    info["flags"] = frozenset(value.split())
    except OSError:
        pass
    return info


def matrix_features(info: dict | None = None) -> dict:
    """``{flag: bool}`` for :data:`MATRIX_FLAGS`, and ``bf16_unit``: ``"amx"``, ``"avx512_bf16"`` or
    ``None`` (no bfloat16 arithmetic in hardware: a bf16 product would be emulated)."""
    flags = (info or cpu_info())["flags"]
    out = {f: f in flags for f in MATRIX_FLAGS}
    out["bf16_unit"] = ("amx" if out["amx_bf16"] and out["amx_tile"]
                        else "avx512_bf16" if out["avx512_bf16"] else None)
    return out


def openblas_coretype_for(info: dict) -> str | None:
    """The OpenBLAS kernel set to ask for on a CPU that OpenBLAS's own detection gets wrong, else None.

    OpenBLAS 0.3.31 (NumPy 2.4's) takes AMD family 26 (Zen 5) for a Haswell and runs AVX2 kernels:
    half the AVX-512 speed of its complex GEMM on that CPU (measured: 83 against 150 GFLOP/s).
    """
    flags = info["flags"]
    if (info["vendor"] == "AuthenticAMD" and (info["family"] or 0) >= 26
            and all(f in flags for f in _SKYLAKEX_NEEDS)):
        return "SkylakeX"
    return None


def prefer_openblas_kernels(environ=os.environ) -> str | None:
    """Set ``OPENBLAS_CORETYPE`` (unless the user set it) where :func:`openblas_coretype_for` says so.

    Effective only before NumPy is first imported; child processes inherit it.  Returns what was set.
    """
    if "OPENBLAS_CORETYPE" in environ:
        return None
    core = openblas_coretype_for(cpu_info())
    if core:
        environ["OPENBLAS_CORETYPE"] = core
    return core
