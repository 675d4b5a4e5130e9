"""Reduced-precision steering product: bfloat16 operands, float32 accumulation.

``precision`` of a :class:`~acam.beamform.filter_and_sum.Beamformer` picks one of :data:`PRECISIONS`:

``single`` / ``double``
    The exact path: complex64 / complex128 matrix products (NumPy's BLAS).
``bf16``
    Steering matrix and spectra rounded to bfloat16 (8 significant bits), products accumulated in
    float32, each product's result rounded to bfloat16 once (PyTorch's CPU matmul returns its input
    type).  Error bound (measured in ``acam bench beamform --precisions``, documented in
    benchmarks/RESULTS.md): about 1e-3 of each map's peak.
``bf16x3``
    Split precision: ``A = Ah + Al`` and ``X = Xh + Xl`` with every part a bfloat16 number, and
    ``A X ~ Ah Xh + Ah Xl + Al Xh`` (the dropped ``Al Xl`` is 2^-16 of the product): about float32
    accuracy.  The three products run as one float32 matrix product over bfloat16-valued operands
    with PyTorch's oneDNN allowed to use bfloat16 units (``fp32_precision='bf16'``), which is exact
    for such operands; the result stays float32.  On CPUs with AMX oneDNN runs it on the tiles; on
    others it runs as float32 arithmetic at float32 speed (three products: slower than ``single``).

Real form.  Per bin, ``Y = A X`` (``A``: pixels x microphones, ``X``: microphones x columns, complex)
is one real product ``Y' = W X'`` with ``W`` the complex64 matrix read as float32 (``W[p, 2m] =
Re A``, ``W[p, 2m + 1] = Im A``: no copy) and ``X'`` (2 mics x 2 columns) built so that ``Y'[p, 2c]
= Re Y`` and ``Y'[p, 2c + 1] = Im Y``: ``Y'`` read as complex64 *is* ``Y``, and the power/transpose
kernel of the exact path applies unchanged.  This 4M form (four real multiply-adds per complex one)
ran 3.3x faster in bfloat16 than the 3M (Gauss) form on an AMD Zen 5 (three half-size products
and their sums; measured in ``acam bench beamform --precisions``).

PyTorch is optional (the ``learn`` extra); without it these modes fail with one line.  CPUs with
neither AMX nor AVX512-BF16 would emulate bfloat16 arithmetic, slower than float32: there
``bf16`` runs the ``single`` path instead and says so (:func:`resolve`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.cpu import matrix_features
from ..core.errors import AcamError


@dataclass(frozen=True)
class Precision:
    """One ``precision`` setting: the NumPy types of the exact maths around it, and whether the
    steering product runs through :class:`ReducedSteering`."""

    name: str
    real: type
    complex: type
    reduced: bool
    summary: str


PRECISIONS = {
    "single": Precision("single", np.float32, np.complex64, False, "complex64 products (exact path)"),
    "double": Precision("double", np.float64, np.complex128, False, "complex128 products (exact path)"),
    "bf16": Precision("bf16", np.float32, np.complex64, True,
                      "bfloat16 operands, float32 accumulation, bfloat16 result"),
    "bf16x3": Precision("bf16x3", np.float32, np.complex64, True,
                        "three bfloat16 products (hi/lo split), float32 accumulation and result"),
}


def precision_of(name: str) -> Precision:
    try:
        return PRECISIONS[name]
    except KeyError:
        raise AcamError(f"precision={name!r} must be one of {', '.join(PRECISIONS)}") from None


def torch_or_error(what: str):
    """The torch module, or one AcamError line naming the extra that brings it."""
    try:
        import torch
    except ImportError:
        raise AcamError(f"precision={what!r} needs PyTorch: pip install 'acam[learn]' "
                        "(or use precision='single')") from None
    return torch


def resolve(name: str, device: str, features: dict | None = None) -> tuple[str, str | None]:
    """``(precision that will run, note or None)`` for a requested ``name`` on ``device``.

    A reduced precision on a CPU without bfloat16 arithmetic (neither AMX nor AVX512-BF16) runs the
    ``single`` path, with a note saying so; ``bf16x3`` on a CPU without AMX runs, with a note that it
    is slower than ``single`` there.
    """
    p = precision_of(name)
    if not p.reduced:
        return name, None
    torch_or_error(name)
    if device != "cpu":
        return name, None
    unit = (features or matrix_features())["bf16_unit"]
    if unit is None:
        return "single", (f"precision={name!r}: this CPU has neither AMX nor AVX512-BF16 (bfloat16 would be "
                          "emulated, slower than float32): running precision='single'")
    if name == "bf16x3" and unit != "amx":
        return name, ("precision='bf16x3': without AMX its three products run as float32 arithmetic "
                      "(slower than precision='single', same accuracy class)")
    return name, None


# ------------------------------------------------------------------------------------ operands
def split_bf16(x32, torch):
    """``(hi, lo)`` bfloat16 tensors with ``hi + lo`` ~ ``x32`` to 2^-16 (round to nearest even)."""
    hi = x32.to(torch.bfloat16)
    lo = (x32 - hi.float()).to(torch.bfloat16)
    return hi, lo


def real_spectra(X: np.ndarray) -> np.ndarray:
    """``X'`` [shape=(n_bins, 2 n_mics, 2 n_cols), float32] of complex spectra ``X`` [shape=(n_bins,
    n_mics, n_cols)] such that ``(A viewed as float32) @ X'`` viewed as complex64 is ``A @ X``."""
    n_bins, n_mics, n_cols = X.shape
    out = np.empty((n_bins, 2 * n_mics, 2 * n_cols), np.float32)
    re, im = X.real, X.imag
    out[:, 0::2, 0::2] = re
    out[:, 1::2, 0::2] = -im
    out[:, 0::2, 1::2] = im
    out[:, 1::2, 1::2] = re
    return out


class ReducedSteering:
    """The steering matrix in the operands of a reduced precision, built chunk by chunk from the
    complex64 matrix (never held whole): ``bf16`` one bfloat16 tensor [shape=(n_bins, n_pixels,
    2 n_mics)], ``bf16x3`` its hi and lo parts."""

    def __init__(self, spec, precision: str, chunk: int = 32):
        from .steering import steering_chunks

        torch = torch_or_error(precision)
        self.precision = precision
        self.shape = (spec.n_bins, spec.grid.n_pixels, len(spec.active))
        n_bins, n_pix, n_mics = self.shape
        self.hi = torch.empty((n_bins, n_pix, 2 * n_mics), dtype=torch.bfloat16)
        self.lo = torch.empty_like(self.hi) if precision == "bf16x3" else None
        for k0, k1, a in steering_chunks(spec, chunk):
            w = torch.from_numpy(a.view(np.float32))
            if self.lo is None:
                self.hi[k0:k1] = w
            else:
                self.hi[k0:k1], self.lo[k0:k1] = split_bf16(w, torch)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.hi, self.lo) if t is not None)


# ------------------------------------------------------------------------------------ products
def steered_power_reduced(op: ReducedSteering, X: np.ndarray, scale, out, n_segments: int,
                          chunk: int | None = None, threads: int | None = None):
    """Like :func:`acam.beamform.filter_and_sum.steered_power` with the product in ``op.precision``.

    As on the exact path, ``threads`` workers (default: the usable cores) take interleaved chunks of
    bins, each running its PyTorch products single-threaded and then the fused power/transpose
    kernel: PyTorch's own OpenMP threads would spin between products and compete with the kernel.
    """
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from ..core.resources import cpu_threads
    from ._kernels import cpu_kernels

    n_bins, n_pix, _ = op.shape
    n_cols = X.shape[2]
    xr = torch.from_numpy(real_spectra(X))
    kernel = cpu_kernels().power_transpose
    if op.precision == "bf16":
        chunk = chunk or 16
        xs = xr.to(torch.bfloat16)

        def product(k0, k1, y, y16):
            torch.bmm(op.hi[k0:k1], xs[k0:k1], out=y16)
            y.copy_(y16)                                # bfloat16 -> float32 (exact), vectorised
            return y.numpy()
    else:
        chunk = chunk or 8
        xh, xl = split_bf16(xr, torch)
        xs = torch.cat([xh, xl, xh], dim=1).float()               # (bins, 6 mics, 2 cols)

        def product(k0, k1, y, y16):
            w3 = torch.cat([op.hi[k0:k1], op.hi[k0:k1], op.lo[k0:k1]], dim=2).float()  # Ah | Ah | Al
            torch.bmm(w3, xs[k0:k1], out=y)
            return y.numpy()

    n_workers = max(1, min(threads or cpu_threads(), -(-n_bins // chunk)))

    def work(w: int) -> None:
        torch.set_num_threads(1)          # OpenMP's thread count is per thread: this worker's products
        y = torch.empty((min(chunk, n_bins), n_pix, 2 * n_cols), dtype=torch.float32)
        y16 = torch.empty(y.shape, dtype=torch.bfloat16) if op.precision == "bf16" else None
        for k0 in range(w * chunk, n_bins, n_workers * chunk):
            k1 = min(n_bins, k0 + chunk)
            n = k1 - k0
            kernel(product(k0, k1, y[:n], None if y16 is None else y16[:n]), scale, out, k0, n_segments)

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _bf16_math(torch):
            if n_workers == 1:
                work(0)
            else:
                with ThreadPoolExecutor(n_workers) as pool:
                    list(pool.map(work, range(n_workers)))
    finally:
        torch.set_num_threads(torch_threads)
    return out


class _bf16_math:
    """oneDNN may run float32 products on bfloat16 units (exact for bfloat16-valued operands)."""

    def __init__(self, torch):
        self.m = torch.backends.mkldnn.matmul

    def __enter__(self):
        self.old = self.m.fp32_precision
        self.m.fp32_precision = "bf16"

    def __exit__(self, *exc):
        self.m.fp32_precision = self.old


# ------------------------------------------------------------------------------ GPU hook (untested)
def gpu_product(w, x, precision: str):
    """The steering product of a chunk on the GPU: ``w`` [shape=(kc, P, 2M)] and ``x`` [shape=(kc, 2M,
    2C)] are CuPy float32 arrays in the real form above; returns a CuPy float32 array [shape=(kc, P,
    2C)] (read as complex64, the chunk's ``A X``) for the GPU power/transpose kernel.

    Through PyTorch on the device (zero-copy DLPack): ``bf16`` rounds both operands to bfloat16 and
    multiplies on the tensor cores with float32 accumulation and a float32 result (``out_dtype``);
    ``bf16x3`` concatenates ``[Wh | Wh | Wl] @ [Xh; Xl; Xh]`` the same way.  Not yet wired into
    :class:`~acam.beamform.filter_and_sum.Beamformer` (which refuses reduced precisions on the GPU) and
    not yet run on a GPU: the session that wrote it had none.
    """
    torch = torch_or_error(precision)
    wt, xt = torch.from_dlpack(w), torch.from_dlpack(x)
    if precision == "bf16":
        a, b = wt.to(torch.bfloat16), xt.to(torch.bfloat16)
    else:
        (wh, wl), (xh, xl) = split_bf16(wt, torch), split_bf16(xt, torch)
        a, b = torch.cat([wh, wh, wl], dim=2), torch.cat([xh, xl, xh], dim=1)
    y = torch.bmm(a, b, out_dtype=torch.float32)
    import cupy

    return cupy.from_dlpack(y)
