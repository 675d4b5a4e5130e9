"""What a user meets around the pictures: progress on long waits (bars or plain log lines), the
'cluster' extra's message, one rule for existing outputs, scenario names, and the small things
(a tone without its frequency, a source behind the array, ``learn --version``, plurals)."""

from __future__ import annotations

import io
import json
import os
import re
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from acam.beamform import default_array, write_raw
from acam.cli import acam, beamform_group
from acam.core.errors import AcamError
from acam.core.progress import LogProgress, _NoBar, progress_bar, wanted


def invoke(group, args, **kw):
    return CliRunner().invoke(group, args, catch_exceptions=False, **kw)


@pytest.fixture
def small_raw(tmp_path, rng):
    path = tmp_path / "raw.h5"
    write_raw(path, rng.standard_normal((6144, 16)).astype(np.float32), 12288.0, default_array().positions[:16], 12.0)
    return path


# ------------------------------------------------------------------------------------------ progress
def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(progress_bar(10, False, "x", "frame"), _NoBar)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(progress_bar(10, True, "x", "frame"), LogProgress)
    monkeypatch.setattr(sys, "stderr", Tty())
    from tqdm import tqdm

    bar = progress_bar(10, True, "x", "frame")
    assert isinstance(bar, tqdm)
    bar.close()
    assert wanted(None) and wanted(True) and not wanted(False)


def test_plain_progress_lines(monkeypatch):
    out = io.StringIO()
    bar = LogProgress(8, "resnet50 epoch 1/2", "batch", interval=0.0, stream=out)
    bar.update(2)
    bar.set_postfix(loss="1.234", acc="0.250", refresh=False)
    bar.update(6)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert re.match(r"\[\d\d:\d\d:\d\d\] resnet50 epoch 1/2: 2/8 batches \(25%\), \d+ s elapsed, about \d+ s left$",
                    lines[0])
    assert "8/8 batches (100%)" in lines[1] and "loss=1.234 acc=0.250" in lines[1] and "left" not in lines[1]
    assert lines[2].endswith("loss=1.234 acc=0.250") and ", done" in lines[2]
    quiet = io.StringIO()
    short = LogProgress(5, "quick", "frequency", interval=3600.0, stream=quiet)
    short.update(5)
    short.close()
    assert quiet.getvalue() == ""                        # waits shorter than the interval stay silent


def test_commands_print_progress_lines_into_a_log(small_raw, tmp_path, monkeypatch):
    monkeypatch.setenv("ACAM_PROGRESS_SECONDS", "0")
    r = invoke(beamform_group, ["run", str(small_raw), "--bins", "16", "--rows", "4", "--cols", "6",
                                "-o", str(tmp_path / "c.h5")])
    assert r.exit_code == 0
    assert re.search(r"\] raw.h5: 6/6 frames \(100%\), \d+ s elapsed, done", r.stderr)
    r = invoke(beamform_group, ["run", str(small_raw), "--bins", "16", "-o", str(tmp_path / "d.h5"), "--no-progress"])
    assert r.exit_code == 0 and r.stderr == ""


def test_training_reports_every_batch(tiny_dataset, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from acam.cli import learn_group

    monkeypatch.setenv("ACAM_PROGRESS_SECONDS", "0")
    run = tmp_path / "dcn"
    r = invoke(learn_group, ["train", "--model", "dualcamnet", "--data", str(tiny_dataset), "--epochs", "1",
                             "--crops", "1", "--device", "cpu", "-o", str(run)])
    assert r.exit_code == 0, r.output
    assert "after 1 epoch" in r.output and "1 epochs" not in r.output
    batches = [ln for ln in r.stderr.splitlines() if "epoch 1/1:" in ln and "batches" in ln]
    assert len(batches) >= 2 and "loss=" in batches[0] and "acc=" in batches[0]
    assert "val_acc=" in batches[-1]
    config = json.loads((run / "config.json").read_text())
    assert config["crops_per_sequence"] == 1 and config["crop_seconds"] == 1.0


def test_config_records_the_default_crops(tiny_dataset, tmp_path):
    pytest.importorskip("torch")
    from acam.learn.train import TrainConfig, fit

    fit(TrainConfig(model="hearnet", data=str(tiny_dataset), train_on=[2], epochs=1, batch_size=128, device="cpu"), str(tmp_path / "h"))
    config = json.loads((tmp_path / "h" / "config.json").read_text())
    assert config["crops_per_sequence"] == 6 and config["crop_seconds"] == 5.0      # the students' defaults


# --------------------------------------------------------------------------------- the cluster extra
def test_cluster_options_without_dask_name_the_extra(small_raw, tmp_path, monkeypatch):
    from acam.core.tasks import Task, run_tasks

    monkeypatch.setitem(sys.modules, "distributed", None)          # as if dask[distributed] were missing
    with pytest.raises(AcamError, match=r"needs the 'cluster' extra: pip install 'acam\[cluster\]'"):
        run_tasks([Task("a", print, ())], workers=2)
    assert run_tasks([Task("a", int, ("3",))]).results == {"a": 3}     # serial runs need no Dask
    r = CliRunner().invoke(beamform_group, ["run", str(small_raw), "--bins", "16", "-o", str(tmp_path / "out"),
                                            "--workers", "2"])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "'cluster' extra" in r.output and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ existing outputs
def test_one_rule_for_existing_cubes(small_raw, tmp_path):
    cube = tmp_path / "c.h5"
    args = ["run", str(small_raw), "--bins", "16", "--rows", "4", "--cols", "6", "-o", str(cube)]
    assert invoke(beamform_group, args).exit_code == 0
    before = cube.read_bytes()
    r = invoke(beamform_group, args)
    assert r.exit_code == 0 and "is up to date" in r.output and "skipped" in r.output
    r = CliRunner().invoke(beamform_group, args + ["--focus", "3"])                 # other settings: refused
    assert r.exit_code == 1 and "--overwrite" in r.output and cube.read_bytes() == before
    os.utime(small_raw, (os.path.getmtime(cube) + 10,) * 2)                         # a newer recording
    r = CliRunner().invoke(beamform_group, args)
    assert r.exit_code == 1 and "newer recording" in r.output and cube.read_bytes() == before
    r = invoke(beamform_group, args + ["--focus", "3", "--overwrite"])
    assert r.exit_code == 0 and "wrote" in r.output and cube.read_bytes() != before
    # many recordings follow the same rule
    out = tmp_path / "many"
    out.mkdir()
    os.replace(cube, out / "raw.cube.h5")
    os.utime(small_raw, (os.path.getmtime(out / "raw.cube.h5") - 10,) * 2)
    r = CliRunner().invoke(beamform_group, ["run", str(small_raw), "-o", str(out) + os.sep, "--bins", "16",
                                            "--rows", "4", "--cols", "6", "--focus", "3"])
    assert r.exit_code == 0 and "1 cube(s) already up to date" in r.output


# ------------------------------------------------------------------------------------------- names
def test_scenario_names_and_numbers():
    from acam.dataset.scenarios import SCENARIO_NAMES, parse_scenarios, scenario_label, scenario_name

    assert SCENARIO_NAMES == {1: "anechoic", 2: "office", 3: "outdoor"}
    assert parse_scenarios("all") == [1, 2, 3]
    assert parse_scenarios("office, Outdoor") == [2, 3] and parse_scenarios("3,1") == [1, 3]
    assert scenario_name(2) == "office" and scenario_label("3") == "outdoor (3)" and scenario_name(9) == "scenario 9"
    with pytest.raises(AcamError, match=r"'kitchen' is not a scenario.*1 anechoic, 2 office, 3 outdoor"):
        parse_scenarios("1,kitchen", "--train-on")


def test_dataset_info_names_the_scenarios(tiny_dataset):
    r = invoke(acam, ["dataset", "info", str(tiny_dataset)])
    assert r.exit_code == 0
    line = next(ln for ln in r.output.splitlines() if ln.startswith("per scenario"))
    assert "anechoic (1): " in line and "office (2): " in line and "outdoor (3): " in line


# ---------------------------------------------------------------------------------- small things
def test_a_tone_needs_its_frequency(tmp_path):
    r = CliRunner().invoke(beamform_group, ["simulate", "-o", str(tmp_path / "r.h5"), "--source", "tone@0,0,2"])
    assert r.exit_code == 1 and "a tone needs its frequency" in r.output and not (tmp_path / "r.h5").exists()


def test_sources_no_picture_shows_are_named(tmp_path):
    r = invoke(beamform_group, ["simulate", "-o", str(tmp_path / "r.h5"), "--duration", "0.2",
                                "--source", "noise@0,0,-2", "--source", "noise@3,0,1", "--source", "noise@0,0,2"])
    assert r.exit_code == 0
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 2
    assert "source 1 (noise at 0,0,-2 m) is behind the array" in warnings[0]
    assert "source 2 (noise at 3,0,1 m) is outside the 60 x 45 degree view" in warnings[1]


def test_learn_has_a_version():
    pytest.importorskip("torch")
    from acam import __version__
    from acam.cli import learn_group

    r = invoke(learn_group, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"learn, version {__version__}"


def test_geometry_report_and_optimiser_report_progress(monkeypatch):
    from acam.beamform import CameraGrid
    from acam.beamform.design import optimise
    from acam.beamform.geometry import sunflower
    from acam.beamform.report import evaluate_all, work_units

    monkeypatch.setenv("ACAM_PROGRESS_SECONDS", "0")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    grid = CameraGrid(12, 16)
    evaluate_all([sunflower(24, 0.3)], grid, [2000.0], band=(500.0, 3000.0), band_step=500.0, progress=True)
    n = work_units(grid, [2000.0], (500.0, 3000.0), 500.0)
    lines = err.getvalue().splitlines()
    assert lines and "PSF of sunflower" in lines[-1] and f"{n}/{n} frequencies (100%)" in lines[-1]
    err.truncate(0)
    err.seek(0)
    optimise(24, 0.3, (1000.0, 3000.0), grid, min_spacing=0.02, iterations=300, n_freqs=4, progress=True)
    last = err.getvalue().splitlines()[-1]
    assert "optimising layout: 300/300 moves (100%)" in last and "worst_sidelobe=" in last
