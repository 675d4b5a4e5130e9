"""A low-rank steering operator: fewer operations per bin, with a stated error bound.

For each bin k the steering matrix ``A_k`` (look points x microphones) is factorised once per
setting, ``A_k = U_k S_k V_k^H``, and truncated to the ``r_k`` singular values above
``tolerance * s_1(A_k)``:

    A_k ~ C_k B_k,   C_k = U_k S_k  (look points x r_k),   B_k = V_k^H  (r_k x microphones)

**Error bound.**  ``||A_k - C_k B_k||_2 = s_{r_k + 1}(A_k) <= tolerance * s_1(A_k)``, so for every
frame and every pixel p the filter-and-sum output moves by at most

    | Y_p - Y^_p |  <=  tolerance * s_1(A_k) * ||x_k||_2

where ``x_k`` is the frame's spectrum at bin k over the microphones; the amplitude ``|Y_p|`` (square
root of the cube's power before the power scaling) obeys the same bound.  Cost per bin and frame:
``(look points + microphones) * r_k`` complex multiply-adds instead of ``look points * microphones``.

The factorisation comes from the Gram matrix ``A_k^H A_k`` (microphones x microphones) in double
precision: its eigenvectors are ``V_k``, the square roots of its eigenvalues the singular values,
and ``C_k = A_k V_k``.  Factors are cached on disk under the settings' digest (``$ACAM_CACHE``,
default ``~/.cache/acam``), so a repeated run pays nothing.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import backend
from ..core.digest import digest
from ..core.errors import AcamError


def cache_dir() -> str:
    return os.environ.get("ACAM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "acam")


class LowRankSteering:
    """Truncated factors of every bin's steering matrix.

    Attributes
    ----------
    ranks : np.ndarray [shape=(n_bins,)]
    C : list of arrays [shape=(n_pixels, r_k)]
    B : list of arrays [shape=(r_k, n_mics)]
    s1 : np.ndarray [shape=(n_bins,)] largest singular value per bin
    """

    def __init__(self, C, B, ranks, s1, tolerance):
        self.C, self.B, self.ranks, self.s1, self.tolerance = C, B, np.asarray(ranks), np.asarray(s1), tolerance
        self._padded = {}      # (chunk, device) -> padded factors per chunk (GPU path)

    def flops_per_column(self, n_pix: int, n_mics: int) -> float:
        """Real flops per frame column, summed over bins (8 per complex multiply-add)."""
        return float(8 * np.sum(self.ranks * (n_pix + n_mics)))


def cache_path(spec_digest: str, tolerance: float, dtype, device: str) -> str:
    """Where the factors of a setting are cached.  The device is part of the key: factors made on
    the CPU never stand in for the GPU's own factorisation (or the other way round)."""
    key = digest("LowRank", spec_digest, float(tolerance), str(np.dtype(dtype)), device)
    return os.path.join(cache_dir(), f"lowrank-{key}.npz")


def factorise(A, tolerance: float, spec_digest: str | None = None, use_cache: bool = True,
              xp=np, dtype=np.complex64) -> LowRankSteering:
    """Truncated factorisation of a steering matrix [shape=(n_bins, n_pixels, n_mics)].

    ``A`` is the matrix, or a function that returns it: then it is only built when the factors are
    not in the cache (``xp`` and ``dtype`` give the cache's device and type).
    """
    if not 0 < tolerance < 1:
        raise AcamError(f"tolerance={tolerance} must lie between 0 and 1 (0 = the exact path)")
    if not callable(A):
        xp, dtype = backend.get_xp(A), A.dtype
    cdtype = np.dtype(dtype)
    path = cache_path(spec_digest, tolerance, cdtype, "cpu" if xp is np else "cuda") if spec_digest else None
    if use_cache and path and os.path.isfile(path):
        with np.load(path) as z:
            ranks, s1 = z["ranks"], z["s1"]
            Cs, Bs = np.split(z["C"], np.cumsum(ranks)[:-1], axis=1), np.split(z["B"], np.cumsum(ranks)[:-1], axis=0)
        return LowRankSteering([xp.asarray(c) for c in Cs], [xp.asarray(b) for b in Bs], ranks, s1, tolerance)
    if callable(A):
        A = A()
    n_bins = A.shape[0]
    Cs, Bs, ranks, s1 = [None] * n_bins, [None] * n_bins, np.zeros(n_bins, int), np.zeros(n_bins)

    def one(k):
        a = A[k].astype(xp.complex128)
        w, v = xp.linalg.eigh(a.conj().T @ a)            # ascending eigenvalues
        w = xp.maximum(w[::-1], 0)
        v = v[:, ::-1]
        s = xp.sqrt(w)
        top = float(s[0])
        r = max(1, int(xp.sum(s > tolerance * top)))
        Cs[k] = (a @ v[:, :r]).astype(cdtype)
        Bs[k] = v[:, :r].conj().T.astype(cdtype)
        ranks[k], s1[k] = r, top

    if xp is np:
        with ThreadPoolExecutor(backend.cpu_threads()) as pool:
            list(pool.map(one, range(n_bins)))
    else:
        for k in range(n_bins):
            one(k)
    lr = LowRankSteering(Cs, Bs, ranks, s1, tolerance)
    if use_cache and path:
        os.makedirs(cache_dir(), exist_ok=True)
        tmp = path + f".{os.getpid()}.part.npz"
        np.savez(tmp, ranks=ranks, s1=s1, C=np.concatenate([backend.to_host(c) for c in Cs], 1),
                 B=np.concatenate([backend.to_host(b) for b in Bs], 0))
        os.replace(tmp, path)
    return lr


def padded_factors(lr: LowRankSteering, chunk: int, xp=np) -> dict:
    """The factors of each chunk of bins ``k0..k0 + chunk - 1`` stacked and zero-padded to the chunk's
    largest rank ``r``: ``{k0: (C [shape=(kc, n_pixels, r)], B [shape=(kc, r, n_mics)])}``.  The zero
    columns of C meet the zero rows of B, so ``C @ (B @ x)`` is each bin's ``C_k (B_k x)`` exactly, in
    two strided-batched products per chunk instead of two small products per bin.  Built once per
    chunk width and device, on the device of ``xp``."""
    key = (chunk, "cpu" if xp is np else f"cuda:{xp.cuda.Device().id}")
    if key in lr._padded:
        return lr._padded[key]
    n_bins, dtype = len(lr.ranks), lr.C[0].dtype
    n_pix, n_mics = lr.C[0].shape[0], lr.B[0].shape[1]
    out = {}
    for k0 in range(0, n_bins, chunk):
        k1 = min(n_bins, k0 + chunk)
        r = int(lr.ranks[k0:k1].max())
        C, B = xp.zeros((k1 - k0, n_pix, r), dtype), xp.zeros((k1 - k0, r, n_mics), dtype)
        for k in range(k0, k1):
            C[k - k0, :, : lr.ranks[k]] = xp.asarray(lr.C[k])
            B[k - k0, : lr.ranks[k]] = xp.asarray(lr.B[k])
        out[k0] = (C, B)
    lr._padded[key] = out
    return out


def padded_product(lr: LowRankSteering, X, chunk: int, xp=np):
    """``product(k0, k1, z)`` for :func:`acam.beamform.filter_and_sum.power_by_chunks` through
    :func:`padded_factors` (``k0`` a multiple of ``chunk``); the GPU's low-rank product."""
    factors = padded_factors(lr, chunk, xp)

    def product(k0, k1, z):
        C, B = factors[k0]
        xp.matmul(C, xp.matmul(B, X[k0:k1]), out=z)

    return product


def steered_power_lowrank(lr: LowRankSteering, X, scale, out, n_segments: int, chunk: int | None = None,
                          threads: int | None = None):
    """Like :func:`beamform.filter_and_sum.steered_power`, with ``A_k x`` computed as ``C_k (B_k x)``
    (on the GPU through :func:`padded_product`)."""
    from .filter_and_sum import power_by_chunks

    xp = backend.get_xp(X)
    n_bins, _, n_cols = X.shape
    if xp is not np:
        # 64 bins per launch pair whatever the block (one padded set per setting; narrow enough that
        # padding to the chunk's largest rank wastes little), fewer only for very long blocks
        chunk = chunk or min(64, backend.gpu_chunk(n_bins, lr.C[0].shape[0], n_cols, np.dtype(X.dtype).itemsize))
        return power_by_chunks(padded_product(lr, X, chunk, xp), n_bins, lr.C[0].shape[0], n_cols, X.dtype,
                               scale, out, n_segments, chunk, threads, xp)
    chunk = chunk or 32

    def product(k0, k1, z):
        for k in range(k0, k1):
            xp.matmul(lr.C[k], lr.B[k] @ X[k], out=z[k - k0])

    return power_by_chunks(product, n_bins, lr.C[0].shape[0], n_cols, X.dtype, scale, out, n_segments,
                           chunk, threads, xp)
