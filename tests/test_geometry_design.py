"""Layout generators, the optimiser, PSF figures, and the analytic PSF against a simulated source."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array
from acam.beamform.design import optimise
from acam.core.errors import AcamError
from acam.beamform.geometry import ArrayGeometry, aperiodic, spiral, sunflower, uniform_grid
from acam.beamform.psf import figures, psf
from acam.beamform.report import evaluate
from acam.cli import beamform_group
from conftest import recording


@pytest.mark.parametrize("make", [uniform_grid, spiral, sunflower,
                                  lambda n, a: aperiodic(n, a, 0.025, 0.035, seed=1)])
def test_generators_fit_the_aperture(make):
    g = make(128, 0.45)
    assert g.n_mics == 128
    assert np.abs(g.positions[:, :2]).max() <= 0.225 + 1e-9
    assert g.min_spacing > 0.01


def test_uniform_grid_is_uniform():
    g = uniform_grid(64, 0.42)
    xs = np.unique(np.round(g.positions[:, 0], 9))
    np.testing.assert_allclose(np.diff(xs), 0.06)


def test_optimiser_is_seeded_respects_constraints_and_improves():
    kw = dict(n_mics=32, aperture=0.3, band=(1000.0, 5000.0), grid=CameraGrid(12, 16),
              min_spacing=0.03, clearance=0.03, iterations=600, n_freqs=6)
    a, b = optimise(seed=5, **kw), optimise(seed=5, **kw)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.min_spacing >= 0.03 - 1e-12
    assert np.hypot(*a.positions[:, :2].T).min() >= 0.03
    assert np.abs(a.positions[:, :2]).max() <= 0.15
    start = optimise(seed=5, **{**kw, "iterations": 0})
    grid = kw["grid"]
    worst = [evaluate(g, grid, [2000.0], band=(1000.0, 5000.0), band_step=250.0)["worst_psl_db"]
             for g in (start, a)]
    assert worst[1] < worst[0] - 1.0


def test_default_layout_has_the_lowest_worst_sidelobe():
    grid = CameraGrid(18, 24)          # coarser grid: same ranking, quicker
    worst = {}
    for g in (uniform_grid(), spiral(), sunflower(), aperiodic(128, 0.45, 0.025, 0.035, seed=0), default_array()):
        worst[g.name] = evaluate(g, grid, [4000.0], band=(500.0, 6000.0), band_step=250.0)["worst_psl_db"]
    best = min(worst, key=worst.get)
    assert best == "acam128", worst


def test_psf_figures_on_a_known_map():
    grid = CameraGrid(36, 48)
    m = psf(default_array(), grid, [6000.0])[0]
    f = figures(m, grid, 6000.0)
    assert m.max() == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(m), m.shape) in [(17, 23), (17, 24), (18, 23), (18, 24)]
    assert 3 < f.beamwidth_px < 8 and -40 < f.psl_db < -10


@pytest.mark.parametrize("pixel", [(18, 24), (8, 10)])
def test_analytic_psf_equals_the_beamformed_simulated_source(pixel):
    """A pyroomacoustics point source (anechoic) on a look point: the beamformer's normalised map at
    each bin equals the analytic PSF for that source.  A Hann window keeps frame-edge leakage out;
    near Nyquist pyroomacoustics' 81-tap fractional-delay filter is the accuracy limit (~3%)."""
    grid = CameraGrid()
    src = tuple(grid.look_points()[pixel])
    rec = recording(((src, "noise"),))
    spec = SteeringSpec(default_array(), grid, rec["sample_freq"], 512)
    bf = Beamformer(spec, 12.0, "hann", device="cpu", precision="double")
    frames = rec["time_data"][: 6 * 1024].reshape(6, 1024, -1).astype(np.float64)
    cube = bf.process(frames).sum(0)            # the source's spectrum cancels on normalising
    freqs = spec.frequencies()
    for k, tol in ((80, 5e-3), (170, 5e-3), (340, 5e-3), (500, 0.03)):   # ~1, 2, 4, 6 kHz
        ours = cube[..., k] / cube[..., k].max()
        ref = psf(default_array(), grid, [freqs[k]], source=src)[0]
        assert np.abs(ours - ref).max() < tol, (k, np.abs(ours - ref).max())


def test_geometry_cli(tmp_path):
    runner = CliRunner()
    for kind in ("grid", "spiral", "sunflower", "random"):
        r = runner.invoke(beamform_group, ["geometry", "make", kind, "--mics", "32", "--aperture", "0.3",
                                           "-o", str(tmp_path / f"{kind}.xml")])
        assert r.exit_code == 0, r.output
        assert ArrayGeometry.from_file(tmp_path / f"{kind}.xml").n_mics == 32
    r = runner.invoke(beamform_group, ["geometry", "make", "optimised", "--mics", "32", "--aperture", "0.3",
                                       "--iterations", "50", "-o", str(tmp_path / "opt.csv")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(beamform_group, ["geometry", "compare", str(tmp_path / "grid.xml"),
                                       str(tmp_path / "opt.csv"), "--freqs", "2000,4000",
                                       "-o", str(tmp_path / "cmp.png")])
    assert r.exit_code == 0, r.output
    assert "| grid | 32 |" in r.output and "| opt | 32 |" in r.output
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(beamform_group, ["geometry", "make", "spiral", "--mics", "30", "--arms", "8",
                                       "-o", str(tmp_path / "bad.xml")])
    assert r.exit_code != 0 and "equal arms" in r.output and not (tmp_path / "bad.xml").exists()


def test_every_layout_of_the_registry():
    from acam.beamform.design import LAYOUTS, LayoutOptions, make_layout

    assert set(LAYOUTS) == {"grid", "spiral", "sunflower", "random", "optimised"}
    opts = LayoutOptions(n_mics=16, iterations=20, min_spacing=0.03)
    for kind in LAYOUTS:
        g = make_layout(kind, opts)
        assert g.n_mics == 16 and g.min_spacing > 0.01, kind
    with pytest.raises(AcamError, match="layout 'hexagon'"):
        make_layout("hexagon", opts)
