"""Scale-out: the same results serially, on a local Dask cluster of 2 workers, and under torchrun.

Every comparison is with a serial run of the same work: cubes and dataset files byte for byte,
training runs weight for weight (same per-task thread count), DDP within float summation order.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acam.beamform import default_array, write_raw
from acam.core.tasks import Dep, Task, local_threads, run_tasks
from acam.cli import acam, beamform_group

# the Dask cluster is the 'cluster' extra; PyTorch (the 'learn' extra) is imported by the tests that train
cloudpickle = pytest.importorskip("cloudpickle")
pytest.importorskip("distributed")
# workers unpickle the helpers below by value (this module is not importable from a worker)
cloudpickle.register_pickle_by_value(sys.modules[__name__])



def _flaky(marker: str, value):
    """Fails on its first call (leaves ``marker``), succeeds afterwards."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return value


def _broken(x):
    raise ValueError(f"cannot handle {x}")


def _plus(a, b):
    return a + b


def _tasks(tmp_path):
    return [Task("a", _plus, (1, 2)),
            Task("flaky", _flaky, (str(tmp_path / "marker"), 7)),
            Task("broken", _broken, ("x",)),
            Task("after-a", _plus, (Dep("a"), 10), ("a",)),
            Task("after-broken", _plus, (Dep("broken"), 1), ("broken",))]


@pytest.mark.parametrize("workers", [None, 2], ids=["serial", "local-cluster"])
def test_retries_failures_and_dependencies(tmp_path, workers):
    rep = run_tasks(_tasks(tmp_path), workers=workers, retries=1)
    assert rep.results == {"a": 3, "flaky": 7, "after-a": 13}
    assert "ValueError: cannot handle x" in rep.failed["broken"]
    assert rep.failed["after-broken"] == "not run: broken failed"
    assert sum(r["tasks"] for r in rep.per_worker()) == 3
    if workers:
        assert rep.workers == 2 and all(w["worker"].startswith("tcp://") for w in rep.per_worker())


def test_no_retries_means_one_attempt(tmp_path):
    rep = run_tasks([Task("flaky", _flaky, (str(tmp_path / "m"), 1))], retries=0)
    assert "RuntimeError: first attempt fails" in rep.failed["flaky"]


def test_task_order_is_checked():
    from acam.core.errors import AcamError

    with pytest.raises(AcamError, match="depends on"):
        run_tasks([Task("b", _plus, (Dep("a"), 1), ("a",)), Task("a", _plus, (1, 1))])


def _recordings(folder, rng, n=3):
    paths = []
    for i in range(n):
        p = folder / f"rec{i}.h5"
        write_raw(p, rng.standard_normal((1024 * (9 + 2 * i), 16)).astype(np.float32), 12288.0,
                  default_array().positions[:16], 12.0)
        paths.append(p)
    return paths


def _run(args):
    return CliRunner().invoke(beamform_group, args, catch_exceptions=False)


def test_many_recordings_on_a_cluster_equal_the_serial_run(tmp_path, rng):
    _recordings(tmp_path, rng)
    common = ["--bins", "32", "--rows", "6", "--cols", "8", "--block-frames", "2", "--device", "cpu", "--no-progress"]
    r = _run(["run", str(tmp_path / "rec*.h5"), "-o", str(tmp_path / "serial"), *common])
    assert r.exit_code == 0, r.output
    # 9-13 frames each, ranges of 4 frames (two blocks): 3 or 4 tasks per recording
    r = _run(["run", str(tmp_path / "rec*.h5"), "-o", str(tmp_path / "dask"), "--workers", "2",
              "--frames-per-task", "3", *common])
    assert r.exit_code == 0, r.output
    assert "on a local Dask cluster (2 workers)" in r.output and "10 task(s) done" in r.output
    for i in range(3):
        name = f"rec{i}.cube.h5"
        assert filecmp.cmp(tmp_path / "serial" / name, tmp_path / "dask" / name, shallow=False), name
    with h5py.File(tmp_path / "dask" / "rec2.cube.h5") as f:
        assert f["cube"].shape == (13, 6, 8, 32)
    # a re-run skips what is done; other settings are refused, file by file
    r = _run(["run", str(tmp_path / "rec*.h5"), "-o", str(tmp_path / "dask"), *common])
    assert r.exit_code == 0 and "3 cube(s) already up to date" in r.output
    before = (tmp_path / "dask" / "rec0.cube.h5").read_bytes()
    r = _run(["run", str(tmp_path / "rec0.h5"), str(tmp_path / "rec1.h5"), "-o", str(tmp_path / "dask"),
              "--focus", "3", *common[:-1]])
    assert r.exit_code == 1 and "2 of 2 recording(s) failed" in r.output and "--overwrite" in r.output
    assert (tmp_path / "dask" / "rec0.cube.h5").read_bytes() == before


def test_a_bad_recording_fails_alone(tmp_path, rng):
    _recordings(tmp_path, rng, 2)
    (tmp_path / "rec9.h5").write_bytes(b"not hdf5")
    out = tmp_path / "out"
    r = _run(["run", str(tmp_path / "rec*.h5"), "-o", str(out), "--bins", "16", "--rows", "4", "--cols", "4",
              "--workers", "2", "--frames-per-task", "4", "--block-frames", "2", "--device", "cpu", "--no-progress"])
    assert r.exit_code == 1
    assert "FAILED rec9.h5:" in r.output and "not an HDF5 file" in r.output
    assert "1 of 3 recording(s) failed" in r.output
    assert sorted(os.listdir(out)) == ["rec0.cube.h5", "rec1.cube.h5"]   # nothing half-written


def test_dataset_build_on_a_cluster_equals_the_serial_build(tmp_path, tiny_dataset):
    out = tmp_path / "tiny"
    r = CliRunner().invoke(acam, ["dataset", "build", "--preset", "tiny", "-o", str(out), "--device", "cpu",
                                  "--limit", "3", "--workers", "2", "--no-progress"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "3 task(s) done" in r.output
    built = sorted(os.listdir(out / "sequences"))
    assert len(built) == 3
    for name in built:   # same datasets and attributes; floats equal to 1e-5 (one CI run differed in last bits)
        with h5py.File(out / "sequences" / name) as a, h5py.File(tiny_dataset / "sequences" / name) as b:
            assert sorted(a) == sorted(b) and dict(a.attrs).keys() == dict(b.attrs).keys(), name
            for k in a:
                x, y = a[k][()], b[k][()]
                if x.dtype.kind == "f":
                    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6 * float(np.abs(y).max() or 1), err_msg=k)
                else:
                    np.testing.assert_array_equal(x, y, err_msg=k)


def _weights(run):
    torch = pytest.importorskip("torch")
    return torch.load(os.path.join(run, "best.pt"), weights_only=True)["model"]


def test_reproduce_on_a_cluster_equals_the_serial_run(tmp_path, tiny_dataset):
    torch = pytest.importorskip("torch")
    from acam.learn.reproduce import Protocol, reproduce

    args = dict(proto=Protocol(epochs=1, seeds=(0,), train_sets=("1",), teachers=("dualcamnet",), students=("hearnet",),
                               distill_from=("dualcamnet",), crops=2, batch_size=8, device="cpu"))
    threads = torch.get_num_threads()
    torch.set_num_threads(local_threads(2, None))     # what each of the 2 local workers uses
    try:
        serial = reproduce(tiny_dataset, tmp_path / "serial", **args)
    finally:
        torch.set_num_threads(threads)
    lines = []
    dask = reproduce(tiny_dataset, tmp_path / "dask", workers=2, echo=lines.append, **args)
    assert serial.keys() == dask.keys() and len(serial) == 3
    np.testing.assert_equal(serial, dask)          # equal, NaN (no test sequence) included
    for run in ("dualcamnet", "hearnet_G", "hearnet_D"):     # same threads per run: bit-equal weights
        a, b = (_weights(tmp_path / w / "seed0" / "train_1" / run) for w in ("serial", "dask"))
        assert all(torch.equal(a[k], b[k]) for k in a), run
    assert any("3 task(s) done" in line for line in lines)
    assert json.loads((tmp_path / "dask" / "results.json").read_text())


def test_torchrun_ddp_equals_a_single_process(tmp_path, tiny_dataset):
    torch = pytest.importorskip("torch")
    from acam.learn.train import TrainConfig, fit

    cfg = ["--model", "hearnet", "--data", str(tiny_dataset), "--epochs", "2", "--batch-size", "8",
           "--crops", "2", "--train-on", "1", "--device", "cpu", "--no-progress", "--keep", "all"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "acam.learn", "train", *cfg, "-o", str(tmp_path / "ddp")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("best validation accuracy") == 1        # rank 0 speaks
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(TrainConfig(model="hearnet", data=str(tiny_dataset), train_on=[1], epochs=2, batch_size=8, lr=1e-4,
                            seed=0, crops_per_sequence=2, device="cpu"),
            str(tmp_path / "single"), keep="all")
    finally:
        torch.set_num_threads(threads)
    a, b = (torch.load(tmp_path / w / "last.pt", weights_only=True)["model"] for w in ("ddp", "single"))
    scale = max(float(v.abs().max()) for v in b.values())
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff < 1e-3 * scale, (diff, scale)
    hist_a = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)["history"]
    hist_b = torch.load(tmp_path / "single" / "last.pt", weights_only=True)["history"]
    assert [h["train_acc"] for h in hist_a] == [h["train_acc"] for h in hist_b]
    np.testing.assert_allclose([h["loss"] for h in hist_a], [h["loss"] for h in hist_b], rtol=1e-5)


def test_ddp_batch_must_split_evenly(tmp_path, tiny_dataset):
    pytest.importorskip("torch")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "acam.learn", "train", "--model", "hearnet", "--data", str(tiny_dataset), "--epochs", "1",
                        "--batch-size", "7", "--device", "cpu", "-o", str(tmp_path / "odd")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert "--batch-size 7 (the global batch) must be a multiple of the 2 processes" in p.stderr


@pytest.mark.parametrize("args, words", [
    (["--workers", "0"], "--workers 0 must be at least 1"),
    (["--retries", "-1"], "--retries -1 must be at least 0"),
    (["--frames-per-task", "0"], "frames_per_task=0 must be at least 1"),
])
def test_impossible_scale_options(tmp_path, rng, args, words):
    _recordings(tmp_path, rng, 1)
    out = tmp_path / "out"
    r = _run(["run", str(tmp_path / "rec0.h5"), "-o", str(out), "--bins", "16", *args])
    assert r.exit_code != 0 and words in r.output
    assert not out.exists() or os.listdir(out) == []


def test_dataset_build_refuses_zero_workers(tmp_path):
    r = CliRunner().invoke(acam, ["dataset", "build", "-o", str(tmp_path / "d"), "--workers", "0"])
    assert r.exit_code != 0 and "--workers 0 must be at least 1" in r.output
    assert not (tmp_path / "d").exists()


def test_grid_search_on_a_cluster_equals_the_serial_one(tmp_path, tiny_dataset):
    torch = pytest.importorskip("torch")
    import csv

    from acam.learn.train import TrainConfig, fit, grid_search

    teacher = str(tmp_path / "dcn")
    fit(TrainConfig(model="dualcamnet", data=str(tiny_dataset), train_on=[1, 2, 3], epochs=1, batch_size=8,
                    lr=1e-3, seed=0, crops_per_sequence=2, device="cpu"), teacher)
    cfg = TrainConfig(model="hearnet", data=str(tiny_dataset), train_on=[1, 2, 3], epochs=1, batch_size=8, lr=1e-3,
                      seed=0, crops_per_sequence=2, teacher=teacher, device="cpu")
    grid = dict(lrs=(1e-3,), temperatures=(1.0, 2.0), lams=(0.5,))
    threads = torch.get_num_threads()
    torch.set_num_threads(local_threads(2, None))
    try:
        serial = grid_search(cfg, str(tmp_path / "serial"), **grid)
    finally:
        torch.set_num_threads(threads)
    dask = grid_search(cfg, str(tmp_path / "dask"), workers=2, **grid)
    rows = [list(csv.DictReader((tmp_path / w / "grid.csv").read_text().splitlines())) for w in ("serial", "dask")]
    assert len(rows[0]) == 2
    assert [r["best_val_acc"] for r in rows[0]] == [r["best_val_acc"] for r in rows[1]]
    assert (serial["temperature"], serial["lam"]) == (dask["temperature"], dask["lam"])
    a, b = _weights(tmp_path / "serial"), _weights(tmp_path / "dask")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_local_cuda_needs_dask_cuda(tmp_path, rng):
    try:
        import dask_cuda  # noqa: F401
        pytest.skip("dask-cuda is installed")
    except ImportError:
        pass
    _recordings(tmp_path, rng, 1)
    r = _run(["run", str(tmp_path / "rec0.h5"), "-o", str(tmp_path / "out"), "--bins", "16",
              "--scheduler", "local-cuda"])
    assert r.exit_code != 0 and "needs dask-cuda: pip install dask-cuda" in r.output
    assert not leftovers_in(tmp_path / "out")


def leftovers_in(folder):
    return [n for n in os.listdir(folder) if n.endswith(".part")] if os.path.isdir(folder) else []
