"""The fast paths: reduced-precision products against the float64 reference, the low-rank cache's
checks, and the compute rate that ``beamform run`` prints.  No timings are asserted."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array
from acam.core.errors import AcamError


# ------------------------------------------------------------------------------ reduced precision
@pytest.fixture(scope="module")
def two_sources():
    """A pyroomacoustics recording of a noise and a chirp source, cut into 6 frames of 1024 samples."""
    from acam.beamform.simulate import Scene, SourceSpec, simulate

    rec = simulate(Scene((SourceSpec((0.4, 0.2, 2.5), "noise"), SourceSpec((-0.6, -0.3, 3.0), "chirp")),
                         duration=0.7, seed=3))
    return rec["time_data"][: 6 * 1024].reshape(6, 1024, -1)


#: Documented bounds (benchmarks/RESULTS.md): max |error| / map peak on pixels within 30 dB of it,
#: a small factor above the measured 1.1e-2 (bf16: float32 accumulation, bfloat16 result) and 6e-6.
BOUNDS = {"bf16": 2e-2, "bf16x3": 2e-5}


@pytest.mark.parametrize("precision", ["bf16", "bf16x3"])
def test_reduced_precision_within_its_bound(two_sources, precision):
    pytest.importorskip("torch", reason="precision='bf16'/'bf16x3' need PyTorch (the 'learn' extra)")
    spec = SteeringSpec(default_array(), CameraGrid(18, 24), 12288.0, 256)
    ref = Beamformer(spec, 12.0, device="cpu", precision="double").process(two_sources.astype(np.float64))
    bf = Beamformer(spec, 12.0, device="cpu", precision=precision)
    if bf.precision != precision:
        pytest.skip(bf.precision_note)
    got = bf.process(two_sources.astype(np.float32))
    assert got.dtype == np.float32
    peak = ref.max(axis=(1, 2), keepdims=True)
    near = ref >= 1e-3 * peak
    err = (np.abs(got - ref) / peak)[near]
    assert err.max() < BOUNDS[precision]
    assert err.max() > 0                                          # it is not the exact path
    # a peak may swap with a near-tie only: the chosen pixel is within twice the bound of the true peak
    flat_ref, flat_got = ref.reshape(6, -1, 256), got.reshape(6, -1, 256)
    chosen = np.take_along_axis(flat_ref, flat_got.argmax(1)[:, None, :], 1)[:, 0]
    assert np.all(chosen >= flat_ref.max(1) * (1 - 2 * BOUNDS[precision]))


def test_reduced_precision_resolution(monkeypatch):
    from acam.beamform import reduced

    with pytest.raises(AcamError, match="precision='half' must be one of"):
        reduced.precision_of("half")
    pytest.importorskip("torch")
    none = {"bf16_unit": None}
    assert reduced.resolve("bf16", "cpu", none)[0] == "single"        # no bf16 arithmetic: float32
    assert "neither AMX nor AVX512-BF16" in reduced.resolve("bf16", "cpu", none)[1]
    assert reduced.resolve("bf16", "cpu", {"bf16_unit": "avx512_bf16"}) == ("bf16", None)
    assert reduced.resolve("bf16x3", "cpu", {"bf16_unit": "amx"}) == ("bf16x3", None)
    assert reduced.resolve("single", "cpu", none) == ("single", None)


def test_reduced_precision_without_torch_is_one_line(monkeypatch):
    import builtins

    from acam.beamform import reduced

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(AcamError, match=r"needs PyTorch: pip install 'acam\[learn\]'"):
        reduced.resolve("bf16", "cpu")


def test_cpu_features_are_read(tmp_path):
    from acam.core.cpu import cpu_info, matrix_features, openblas_coretype_for

    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
                 "model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16\n\n"
                 "processor\t: 1\nflags\t\t: nothing\n")
    info = cpu_info.__wrapped__(str(f))
    assert (info["vendor"], info["family"], info["name"]) == ("AuthenticAMD", 26, "AMD EPYC")
    assert matrix_features(info)["bf16_unit"] == "avx512_bf16"
    assert openblas_coretype_for(info) == "SkylakeX"
    assert openblas_coretype_for({**info, "family": 25}) is None


# ------------------------------------------------------------------------------ low-rank cache
@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACAM_CACHE", str(tmp_path))
    return tmp_path


SPEC = SteeringSpec(default_array(), CameraGrid(6, 8), 12288.0, 32)


def _rewrite(path, **changes):
    """Rewrite a cache file with some arrays replaced; ``fix_digest`` recomputes its checksum (a
    deliberate tampering rather than corruption)."""
    from acam.beamform.lowrank import _arrays_digest

    fix = changes.pop("fix_digest", False)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    meta = json.loads(arrays["meta"].tobytes().decode())
    if fix:
        meta["sha256"] = _arrays_digest(arrays["ranks"], arrays["s1"], arrays["V"])
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    os.unlink(path)
    np.savez(path, **arrays)


def _fresh_and_cached(frames):
    first = Beamformer(SPEC, 12.0, device="cpu", tolerance=1e-3)
    expected = first.process(frames)
    path = [os.path.join(os.environ["ACAM_CACHE"], f) for f in os.listdir(os.environ["ACAM_CACHE"])]
    assert len(path) == 1 and os.path.getsize(path[0]) < 2e6            # V only: no look-point factors
    return expected, path[0]


def _tampered(path):
    with np.load(path) as z:
        V, ranks = z["V"], z["ranks"]
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal(V.shape) + 1j * rng.standard_normal(V.shape))
    return {
        "flipped byte": None,
        "truncated": None,
        "zero factors": {"V": np.zeros_like(V), "fix_digest": True},
        "other orthonormal factors": {"V": q.astype(V.dtype), "fix_digest": True},
        "ranks shifted": {"ranks": np.roll(ranks, 1), "fix_digest": True},
        "checksum only": {"s1": np.ones(len(ranks))},
    }


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "zero factors", "other orthonormal factors",
                                    "ranks shifted", "checksum only"])
def test_lowrank_cache_damage_is_detected_and_recomputed(cache, damage, capsys):
    frames = np.random.default_rng(1).standard_normal((2, 1024, 128))
    expected, path = _fresh_and_cached(frames)
    again = Beamformer(SPEC, 12.0, device="cpu", tolerance=1e-3)
    again.prepare()
    assert again.lowrank.source == "cache"
    change = _tampered(path)[damage]
    if damage == "flipped byte":
        from pathlib import Path

        data = bytearray(Path(path).read_bytes())
        i = data.find(b"V.npy") + 1000                       # inside the factors (V) data
        data[i] ^= 0xFF
        Path(path).write_bytes(bytes(data))
    elif damage == "truncated":
        os.truncate(path, os.path.getsize(path) // 2)
    else:
        _rewrite(path, **change)
    capsys.readouterr()
    bf = Beamformer(SPEC, 12.0, device="cpu", tolerance=1e-3)
    got = bf.process(frames)
    assert bf.lowrank.source == "recomputed"
    assert "ignoring low-rank cache" in capsys.readouterr().err
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * expected.max())
    assert got.max() > 0
    # the damaged file was replaced by a good one
    assert Beamformer(SPEC, 12.0, device="cpu", tolerance=1e-3).lowrank.source == "cache"


def test_lowrank_cache_is_small_and_zip_bombs_are_refused(cache):
    from acam.beamform.lowrank import CacheRejected, _load, cache_path

    _fresh_and_cached(np.zeros((1, 1024, 128)))
    key, path = cache_path(SPEC, 1e-3, np.complex64)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("extra.npy", b"0" * 10)
    with pytest.raises(CacheRejected, match="unexpected members"):
        _load(path, key, SPEC, 1e-3, np.complex64)


# ------------------------------------------------------------------------------ printed rates
def test_rate_line_uses_compute_time_only():
    from acam.beamform.pipeline import RunReport, rate_line

    line = rate_line(120, 10.0, compute_s=0.5, setup_s=3.0, total_s=4.0)
    assert "120 frames in 0.50 s = 240.0 frames/s (20.0x real time)" in line
    assert "set-up 3.00 s" in line and "I/O and waits 0.50 s" in line
    # the same compute time with a far longer wall time prints the same rate
    assert "240.0 frames/s (20.0x real time)" in RunReport(120, 10.0, "cpu", "x", 30.0, 0.5, 99.0).rates()


def test_run_prints_the_compute_rate_apart_from_setup(tmp_path, monkeypatch):
    """A known timing injected into ``beamform run``: the printed rate is frames / compute time."""
    from click.testing import CliRunner

    from acam import cli
    from acam.beamform import batch, pipeline

    raw = tmp_path / "rec.h5"
    raw.write_bytes(b"")
    monkeypatch.setattr(batch, "beamform_one", lambda *a, **k: pipeline.RunReport(
        360, 30.0, "cpu", "d", setup_s=2.0, compute_s=1.5, total_s=4.0, precision="bf16"))
    res = CliRunner().invoke(cli.acam, ["beamform", "run", str(raw), "-o", str(tmp_path / "c.h5"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "compute: 360 frames in 1.50 s = 240.0 frames/s (20.0x real time); set-up 2.00 s" in res.output
    assert "(bf16)" in res.output


def test_lowrank_cache_special_files_and_dead_writers_parts(cache, capsys):
    """A FIFO at the cache path is neither read (it would block) nor replaced; part files of a killed
    cache writer are removed by the next write."""
    import stat
    import subprocess

    from acam.beamform.lowrank import cache_path
    from acam.core.safeio import _HOST

    frames = np.random.default_rng(5).standard_normal((2, 1024, 128))
    _, path = cache_path(SPEC, 1e-3, np.complex64)
    os.mkfifo(path)
    dead = subprocess.Popen(["true"])
    dead.wait()                                             # a pid that is gone
    stale = os.path.join(cache, f".{os.path.basename(path)}.{_HOST}.{dead.pid}.0badf00d.part.npz")
    open(stale, "wb").close()
    lr = Beamformer(SPEC, 12.0, device="cpu", tolerance=1e-3)
    lr.process(frames)                                      # returns: the FIFO was not opened
    assert lr.lowrank.source == "recomputed"
    assert "not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.stat(path).st_mode)             # left as it was, nothing written over it
    os.unlink(path)
    Beamformer(SPEC, 12.0, device="cpu", tolerance=1e-3).process(frames)
    assert not os.path.exists(stale) and os.path.isfile(path)
