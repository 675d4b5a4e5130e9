"""A low-rank steering operator: fewer operations per bin, with a stated error bound.

For each bin k the steering matrix ``A_k`` (look points x microphones) is factorised once per
setting, ``A_k = U_k S_k V_k^H``, and truncated to the ``r_k`` singular values above
``tolerance * s_1(A_k)``:

    A_k ~ C_k B_k,   C_k = A_k V_k = U_k S_k  (look points x r_k),   B_k = V_k^H  (r_k x microphones)

**Error bound.**  ``||A_k - C_k B_k||_2 = s_{r_k + 1}(A_k) <= tolerance * s_1(A_k)``, so for every
frame and every pixel p the filter-and-sum output moves by at most

    | Y_p - Y^_p |  <=  tolerance * s_1(A_k) * ||x_k||_2

where ``x_k`` is the frame's spectrum at bin k over the microphones; the amplitude ``|Y_p|`` (square
root of the cube's power before the power scaling) obeys the same bound.  Cost per bin and frame:
``(look points + microphones) * r_k`` complex multiply-adds instead of ``look points * microphones``.

**Factorisation** (:func:`factorise`), chunk by chunk of bins on every core, never holding the whole
steering matrix: the chunk's steering matrix is built (:func:`~acam.beamform.steering.steering_matrix`),
its Gram matrix ``A_k^H A_k`` (microphones x microphones) formed, its eigenvectors (``V_k``) and
eigenvalues (``s_i^2``) found in double precision, and ``C_k = A_k V_k`` computed.  The Gram matrix is
formed in single precision for ``tolerance >= 1e-3`` (measured on the sensor's array: its rounding
resolves singular values down to about 1e-4 of ``s_1``, the bound held at 1e-3 and was exceeded by up
to 30% at 1e-4), in double precision below that or when the beamformer runs in double precision.

**Cache.**  Only ``V_k`` (microphones x r_k per bin, tens of MB), the ranks and ``s_1`` are stored,
under the settings' digest in ``$ACAM_CACHE`` (default ``~/.cache/acam``); ``C_k`` is recomputed from
the steering matrix on load (one product per bin, cheap).  A cache file is used only if it passes
:func:`_load`'s checks - its size, members, shapes and types, a SHA-256 of its arrays, the settings
it was made for - and, while ``C_k`` is rebuilt, the checks of the factors themselves: ``V_k``
orthonormal, ``||C_k[:, 0]|| = s_1``, and the energy left out ``||A_k||_F^2 - ||C_k||_F^2`` within
``(M - r_k) (tolerance s_1)^2``.  A corrupt or tampered file is reported in one line and the factors
are recomputed (and the file replaced); it never produces a cube.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import backend
from ..core.digest import digest
from ..core.errors import AcamError
from ..core.safeio import part_path, remove_stale_parts

#: Smallest tolerance factorised from a single-precision Gram matrix (see the module docs).
SINGLE_GRAM_MIN_TOLERANCE = 1e-3
#: Cache files larger than this are not read (the sensor's setting at 1e-4 needs about 60 MB).
MAX_CACHE_BYTES = 512 * 2 ** 20
_FORMAT = "acam-lowrank/2"


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
    source : str
        ``computed``, ``cache`` or ``recomputed`` (a cache file failed its checks).
    """

    def __init__(self, C, B, ranks, s1, tolerance, source: str = "computed"):
        self.C, self.B, self.ranks, self.s1, self.tolerance = C, B, np.asarray(ranks), np.asarray(s1), tolerance
        self.source = source
        self._padded = {}      # (chunk, device) -> padded factors per chunk (GPU path)

    def flops_per_column(self, n_pix: int, n_mics: int) -> float:
        """Real flops per frame column, summed over bins (8 per complex multiply-add)."""
        return float(8 * np.sum(self.ranks * (n_pix + n_mics)))


class CacheRejected(Exception):
    """A cache file that may not be used (the message says why)."""


def cache_path(spec, tolerance: float, dtype) -> tuple[str, str]:
    """``(key, path)`` of the cache file of one setting."""
    key = digest("LowRank", _FORMAT, spec.digest, float(tolerance), str(np.dtype(dtype)))
    return key, os.path.join(cache_dir(), f"lowrank-{key}.npz")


def factorise(spec, tolerance: float, xp=np, dtype=np.complex64, use_cache: bool = True,
              progress: bool = False, chunk: int = 32, threads: int | None = None) -> LowRankSteering:
    """The truncated factors of the steering matrix of ``spec`` (a
    :class:`~acam.beamform.steering.SteeringSpec`), from the cache when a valid file is there."""
    if not 0 < tolerance < 1:
        raise AcamError(f"tolerance={tolerance} must lie between 0 and 1 (0 = the exact path)")
    dtype = np.dtype(dtype)
    key, path = cache_path(spec, tolerance, dtype)
    if use_cache and os.path.lexists(path):
        try:
            ranks, s1, V = _load(path, key, spec, tolerance, dtype)
            Cs, Bs = _rebuild(spec, tolerance, dtype, ranks, s1, V, chunk, threads)
            return LowRankSteering([xp.asarray(c) for c in Cs], [xp.asarray(b) for b in Bs], ranks, s1,
                                   tolerance, "cache")
        except CacheRejected as exc:
            print(f"acam: ignoring low-rank cache {path}: {exc}; recomputing", file=sys.stderr)
            source = "recomputed"
    else:
        source = "computed"
    Cs, Bs, ranks, s1 = _compute(spec, tolerance, dtype, progress, chunk, threads)
    if use_cache:
        _save(path, key, spec, tolerance, dtype, ranks, s1, Bs)
    return LowRankSteering([xp.asarray(c) for c in Cs], [xp.asarray(b) for b in Bs], ranks, s1, tolerance, source)


# -------------------------------------------------------------------------------- computing
def _by_chunks(spec, dtype, chunk: int, threads: int | None, fn, progress: bool = False, what: str = ""):
    """``fn(k, A_k)`` for every bin, chunks of bins built and processed by ``threads`` workers
    (single-threaded BLAS each), with an optional progress bar over bins."""
    from threadpoolctl import threadpool_limits

    from ..core.progress import progress_bar
    from .steering import steering_matrix

    n_bins = spec.n_bins
    n_workers = max(1, min(threads or backend.cpu_threads(), -(-n_bins // chunk)))
    bar = progress_bar(n_bins, progress, what, "bin")
    gains = spec.gains_and_delays()
    lock = threading.Lock()

    def work(w: int) -> None:
        buf = np.empty((min(chunk, n_bins), spec.grid.n_pixels, len(spec.active)), dtype)
        for k0 in range(w * chunk, n_bins, n_workers * chunk):
            k1 = min(n_bins, k0 + chunk)
            A = steering_matrix(spec, np, dtype, (k0, k1), buf[: k1 - k0], threads=1, gains=gains)
            for k in range(k0, k1):
                fn(k, A[k - k0])
            with lock:
                bar.update(k1 - k0)

    try:
        with threadpool_limits(1, user_api="blas"):
            if n_workers == 1:
                work(0)
            else:
                with ThreadPoolExecutor(n_workers) as pool:
                    list(pool.map(work, range(n_workers)))
    finally:
        bar.close()


def _compute(spec, tolerance, dtype, progress, chunk, threads):
    n_bins = spec.n_bins
    Cs, Bs, ranks, s1 = [None] * n_bins, [None] * n_bins, np.zeros(n_bins, int), np.zeros(n_bins)
    gram_dtype = np.complex64 if (dtype == np.complex64 and tolerance >= SINGLE_GRAM_MIN_TOLERANCE) else np.complex128

    def one(k, a):
        ag = a if a.dtype == gram_dtype else a.astype(gram_dtype)
        w, v = np.linalg.eigh((ag.conj().T @ ag).astype(np.complex128))      # ascending eigenvalues
        s = np.sqrt(np.maximum(w[::-1], 0))
        v = v[:, ::-1]
        r = max(1, int(np.sum(s > tolerance * s[0])))
        vr = v[:, :r].astype(dtype)
        Cs[k], Bs[k] = a @ vr, np.ascontiguousarray(vr.conj().T)
        ranks[k], s1[k] = r, s[0]

    _by_chunks(spec, dtype, chunk, threads, one, progress, f"low-rank factors (tolerance {tolerance:g})")
    return Cs, Bs, ranks, s1


def _rebuild(spec, tolerance, dtype, ranks, s1, V, chunk, threads):
    """``C_k = A_k V_k`` from cached ``V``, checking the factors (raises CacheRejected)."""
    n_bins, n_mics = spec.n_bins, len(spec.active)
    offsets = np.concatenate([[0], np.cumsum(ranks)])
    gain, _ = spec.gains_and_delays()
    a_energy = float(np.sum(gain.astype(np.float64) ** 2))          # ||A_k||_F^2, the same for every bin
    Cs, Bs, bad = [None] * n_bins, [None] * n_bins, []

    def one(k, a):
        v = V[:, offsets[k]:offsets[k + 1]]
        r = v.shape[1]
        gram = v.conj().T.astype(np.complex128) @ v
        c = a @ v
        c_energy = float(np.square(c.view(c.real.dtype), dtype=np.float64).sum())
        left_out = a_energy - c_energy
        allowed = (n_mics - r) * (tolerance * s1[k]) ** 2 * 1.01 + 1e-5 * a_energy
        if (not np.all(np.isfinite(c)) or np.abs(gram - np.eye(r)).max() > 1e-3
                or abs(np.linalg.norm(c[:, 0]) - s1[k]) > 1e-3 * s1[k] or left_out > allowed):
            bad.append(k)
            return
        Cs[k], Bs[k] = c, np.ascontiguousarray(v.conj().T)

    _by_chunks(spec, dtype, chunk, threads, one)
    if bad:
        raise CacheRejected(f"its factors do not reproduce the steering matrix in {len(bad)} bin(s) "
                            f"(first: bin {min(bad)})")
    return Cs, Bs


# ---------------------------------------------------------------------------------- the file
def _arrays_digest(ranks, s1, V) -> str:
    h = hashlib.sha256()
    for a in (ranks, s1, V):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _meta(key, spec, tolerance, dtype) -> dict:
    return {"format": _FORMAT, "key": key, "spec": spec.digest, "tolerance": float(tolerance),
            "dtype": np.dtype(dtype).str, "n_bins": int(spec.n_bins), "n_mics": int(len(spec.active))}


def _save(path, key, spec, tolerance, dtype, ranks, s1, Bs) -> None:
    V = np.concatenate([b.conj().T for b in Bs], axis=1).astype(dtype)         # (mics, sum of ranks)
    ranks, s1 = np.asarray(ranks, np.int64), np.asarray(s1, np.float64)
    meta = {**_meta(key, spec, tolerance, dtype), "sha256": _arrays_digest(ranks, s1, V)}
    os.makedirs(cache_dir(), exist_ok=True)
    if os.path.lexists(path) and not _regular(path):
        print(f"acam: not writing the low-rank cache {path}: something other than a file is there", file=sys.stderr)
        return
    remove_stale_parts(path)                      # parts of cache writers that were killed
    tmp = part_path(path) + ".npz"                # np.savez keeps a name that ends in .npz
    try:
        np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), ranks=ranks, s1=s1, V=V)
        os.replace(tmp, path)
    except OSError as exc:        # a read-only or full cache folder costs the next run time, nothing else
        print(f"acam: could not write the low-rank cache {path}: {exc.strerror or exc}", file=sys.stderr)
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _regular(path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _load(path, key, spec, tolerance, dtype):
    """``(ranks, s1, V)`` of a cache file, or CacheRejected naming the first check that failed."""
    n_bins, n_mics = spec.n_bins, len(spec.active)
    want = {"meta": None, "ranks": (n_bins,), "s1": (n_bins,)}
    if not _regular(path):                        # a FIFO would block the read, a device never end
        raise CacheRejected("it is not a regular file")
    try:
        size = os.path.getsize(path)
        if size > MAX_CACHE_BYTES:
            raise CacheRejected(f"{size} bytes is more than a low-rank cache can need")
        with zipfile.ZipFile(path) as z:
            names = sorted(i.filename for i in z.infolist())
            if names != ["V.npy", "meta.npy", "ranks.npy", "s1.npy"]:
                raise CacheRejected(f"unexpected members {names}")
            if sum(i.file_size for i in z.infolist()) > MAX_CACHE_BYTES:
                raise CacheRejected("its members unpack to more than a low-rank cache can need")
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in ("meta", "ranks", "s1", "V")}
    except CacheRejected:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, KeyError, EOFError) as exc:
        raise CacheRejected(f"unreadable ({exc})") from None
    try:
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        raise CacheRejected("its header is not JSON") from None
    expected = _meta(key, spec, tolerance, dtype)
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
        raise CacheRejected("it was made for other settings")
    ranks, s1, V = arrays["ranks"], arrays["s1"], arrays["V"]
    for name, shape in want.items():
        if shape is not None and arrays[name].shape != shape:
            raise CacheRejected(f"{name} has shape {arrays[name].shape}, expected {shape}")
    if ranks.dtype != np.int64 or s1.dtype != np.float64 or V.dtype != np.dtype(dtype):
        raise CacheRejected("unexpected array types")
    if ranks.min() < 1 or ranks.max() > n_mics or V.shape != (n_mics, int(ranks.sum())):
        raise CacheRejected(f"ranks and factors do not fit {n_mics} microphones")
    if not (np.all(np.isfinite(s1)) and np.all(s1 > 0) and np.all(np.isfinite(V))):
        raise CacheRejected("non-finite or non-positive values")
    if meta.get("sha256") != _arrays_digest(ranks, s1, V):
        raise CacheRejected("its checksum does not match its contents")
    return ranks, s1, V


# ---------------------------------------------------------------------------------- product
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
