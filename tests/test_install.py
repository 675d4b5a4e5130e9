"""The package installs as one import name, ``acam``, with its three commands."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_one_top_level_name(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "w"),
                            str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "w").glob("acam-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"acam"}
    for old in ("beamform/", "dataset/", "learn/", "benchmarks/", "cli.py", "core/"):
        assert not any(n.startswith(old) for n in names), old
    for sub in ("acam/cli.py", "acam/core/tasks.py", "acam/beamform/filter_and_sum.py", "acam/dataset/store.py",
                "acam/learn/train.py", "acam/benchmarks/bench_beamform.py", "acam/beamform/data/acam128.xml"):
        assert sub in names, sub
    assert not any(n.startswith("acam/tests/") or n.startswith("tests/") for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for cmd in ("acam = acam.cli:acam", "beamform = acam.cli:beamform_group", "learn = acam.cli:learn_group"):
        assert cmd in entry

    # installed alone (no dependencies) into a fresh environment: site-packages gains one name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    zipfile.ZipFile(wheel).extractall(site)  # what pip install --no-deps does for a pure wheel
    before = {p.name for p in site.iterdir()}
    assert {n for n in before if not n.endswith(".dist-info")} == {"acam"}
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import acam; print(acam.__version__, acam.__file__)"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert str(site) in out.stdout
