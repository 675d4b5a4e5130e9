"""Compute kernels of the hot path: CUDA sources (compiled lazily by :mod:`acam.beamform.backend`) and
their CPU twins compiled by Numba on first use.

Two operations need a kernel of their own because NumPy/CuPy would spend several memory passes on
them:

``steering_fill``
    ``A[k, p, m] = gain[p, m] * exp(+1j * (omega0 + k * domega) * dtau[p, m])`` for all bins ``k``,
    pixels ``p`` and microphones ``m``.  On the CPU the phase is advanced from bin to bin by one
    complex multiplication in double precision (``z <- z * exp(1j * domega * dtau)``), which is exact
    to ~1e-13 over 512 bins and avoids 10^8 calls to sin/cos; the GPU evaluates ``sincos`` of the
    phase directly, also in double precision whatever the output type (the phase reaches ~21 rad,
    where a float32 argument alone is off by ~1e-6 rad), and rounds only the product ``gain * e^{i phi}``
    to the output type, as the CPU does.

``power_transpose``
    Takes the filter-and-sum output of a chunk of ``kc`` bins, ``z[kk, p, b * n_segments + j]`` (complex),
    and writes ``out[b, p, k0 + kk] = scale[k0 + kk] * sum_j |z[kk, p, b * n_segments + j]|^2`` into the
    cube block, whose layout is bins-last.  Power, averaging over the ``n_segments`` sub-blocks of a frame
    and the transposition are fused into one pass.
"""

from __future__ import annotations

import functools

# ----------------------------------------------------------------------------------------- CUDA
CUDA_SOURCE = r"""
// Complex numbers laid out as NumPy/CuPy store them, aligned like float2/double2 so that one
// element is one 8- or 16-byte access rather than two.
template <typename T> struct alignas(2 * sizeof(T)) Complex2 { T x, y; };

// The phase and gain in double precision whatever T is; only the result is rounded to T.
template <typename T>
__global__ void steering_fill(const double* __restrict__ gain, const double* __restrict__ dtau,
                              const double* __restrict__ omega, Complex2<T>* __restrict__ out,
                              int n_bins, int n_pix, int n_mics) {
    long long n_pm = (long long)n_pix * n_mics;
    long long total = (long long)n_bins * n_pm;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long pm = i % n_pm;
        int k = (int)(i / n_pm);
        double s, c;
        sincos(omega[k] * dtau[pm], &s, &c);
        Complex2<T> v; v.x = (T)(gain[pm] * c); v.y = (T)(gain[pm] * s);
        out[i] = v;
    }
}

// Tiled transpose: a block handles 32 bins x 32 frames of one pixel (pixels on grid.x, which
// allows 2^31 - 1 blocks; frames and bin tiles on y and z).
template <typename T>
__global__ void power_transpose(const Complex2<T>* __restrict__ z, const T* __restrict__ scale,
                                T* __restrict__ out, int kc, int n_pix, int n_frames, int n_segments,
                                int n_bins, int k0) {
    __shared__ T tile[32][33];
    int p = blockIdx.x, b0 = blockIdx.y * 32, kk0 = blockIdx.z * 32;
    long long n_cols = (long long)n_frames * n_segments;
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
        int kk = kk0 + r, b = b0 + threadIdx.x;
        T acc = 0;
        if (kk < kc && b < n_frames) {
            const Complex2<T>* row = z + ((long long)kk * n_pix + p) * n_cols + (long long)b * n_segments;
            for (int j = 0; j < n_segments; ++j) { Complex2<T> v = row[j]; acc += v.x * v.x + v.y * v.y; }
            acc *= scale[k0 + kk];
        }
        tile[r][threadIdx.x] = acc;
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
        int b = b0 + r, kk = kk0 + threadIdx.x;
        if (b < n_frames && kk < kc)
            out[((long long)b * n_pix + p) * n_bins + k0 + kk] = tile[threadIdx.x][r];
    }
}
"""
CUDA_NAMES = ("steering_fill<float>", "steering_fill<double>",
              "power_transpose<float>", "power_transpose<double>")


# ------------------------------------------------------------------------------------------ CPU
@functools.lru_cache(maxsize=None)
def cpu_kernels():
    """Compile (first call) and return the Numba CPU kernels as a simple namespace."""
    import types

    import numba
    import numpy as np

    @numba.njit(nogil=True, fastmath=True, cache=True)
    def power_one_segment(zf, scale, out, k0):  # pragma: no cover - compiled
        # zf: float view (kc, P, 2 * n_frames) of the complex chunk; out: (B, P, K) real, C-contiguous.
        # Powers of one pixel go to a small (kc, B) buffer in L1, then out as rows of kc contiguous
        # values: 2.3x faster than writing through 2-D views (measured on a Zen 5)
        kc, n_pix, two_cols = zf.shape
        n_frames = two_cols // 2
        n_bins = out.shape[2]
        flat = out.reshape(-1)
        pw = np.empty((kc, n_frames), zf.dtype)
        for p in range(n_pix):
            for kk in range(kc):
                s = scale[k0 + kk]
                row = zf[kk, p]
                t = pw[kk]
                for b in range(n_frames):
                    t[b] = s * (row[2 * b] * row[2 * b] + row[2 * b + 1] * row[2 * b + 1])
            base = p * n_bins + k0
            for b in range(n_frames):
                o = b * n_pix * n_bins + base
                for kk in range(kc):
                    flat[o + kk] = pw[kk, b]

    @numba.njit(nogil=True, fastmath=True, cache=True)
    def power_segments(zf, scale, out, k0, n_segments):  # pragma: no cover - compiled
        # as power_one_segment, averaging n_segments segments per frame
        kc, n_pix, two_cols = zf.shape
        n_frames = two_cols // (2 * n_segments)
        n_bins = out.shape[2]
        flat = out.reshape(-1)
        pw = np.empty((kc, n_frames), zf.dtype)
        for p in range(n_pix):
            for kk in range(kc):
                s = scale[k0 + kk]
                row = zf[kk, p]
                t = pw[kk]
                for b in range(n_frames):
                    acc = row[0] * 0
                    for j in range(2 * b * n_segments, 2 * (b + 1) * n_segments):
                        acc += row[j] * row[j]
                    t[b] = acc * s
            base = p * n_bins + k0
            for b in range(n_frames):
                o = b * n_pix * n_bins + base
                for kk in range(kc):
                    flat[o + kk] = pw[kk, b]

    def power_transpose(zf, scale, out, k0, n_segments):
        if n_segments == 1:
            power_one_segment(zf, scale, out, k0)
        else:
            power_segments(zf, scale, out, k0, n_segments)

    @numba.njit(nogil=True, cache=True)
    def steering_fill(gain, dtau, omega0, domega, out, p0, p1):  # pragma: no cover - compiled
        # pixels p0..p1-1; callers run disjoint pixel ranges in threads (nogil)
        n_bins, n_pix, n_mics = out.shape
        z = np.empty(n_mics, np.complex128)
        step = np.empty(n_mics, np.complex128)
        for p in range(p0, p1):
            for m in range(n_mics):
                z[m] = gain[p, m] * np.exp(1j * omega0 * dtau[p, m])
                step[m] = np.exp(1j * domega * dtau[p, m])
            for k in range(n_bins):
                for m in range(n_mics):
                    out[k, p, m] = z[m]
                    z[m] = z[m] * step[m]

    return types.SimpleNamespace(power_transpose=power_transpose, steering_fill=steering_fill)
