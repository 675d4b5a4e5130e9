"""Physics version 2 of the simulated dataset: the figures it cites are the figures it renders."""

from __future__ import annotations

import json
import math
import os

import h5py
import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal
from click.testing import CliRunner

from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array
from acam.beamform.sensor import SPEED_OF_SOUND
from acam.cli import acam
from acam.core.errors import AcamError
from acam.dataset import physics as ph
from acam.dataset.ambience import nc35_psd
from acam.dataset.build import (PRESETS, build, dataset_beamformer, delay_and_sum, physics_of, plan_v2,
                                sequence_stems, sounds_of, waypoint_edges)
from acam.dataset.diagnose import BAND, diagnose, format_table, rendered_rt60, write
from acam.dataset.interferers import Emission, Source
from acam.dataset.rooms import HALF, rirs, to_room
from acam.dataset.scenes import Plan, Sensor, render
from acam.dataset.sounds import ACTIONS, Subject, synthesise_traced
from acam.dataset.store import Dataset, read_crop
from acam.dataset.video import motion_v2

FS = 12288.0
TINY = PRESETS["tiny"]
MANIFEST_V2 = {"physics": 2, "seed": 0, "sample_freq": FS, "preset": {**TINY.__dict__}}


def _seq(action: int, scenario: int, subject: int = 0) -> dict:
    return {"name": f"a{action:02d}_s{scenario}_p{subject:02d}_r0", "action": action, "scenario": scenario,
            "subject": subject, "repetition": 0, "n_frames": 24}


def _ideal(n_mics: int) -> Sensor:
    return Sensor(np.ones(n_mics), np.zeros(n_mics), ())


def _coherency(x, y, fs, nperseg=512):
    f, sxy = scipy.signal.csd(x, y, fs, nperseg=nperseg)
    _, sxx = scipy.signal.welch(x, fs, nperseg=nperseg)
    _, syy = scipy.signal.welch(y, fs, nperseg=nperseg)
    return f, np.real(sxy) / np.sqrt(sxx * syy)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One v2 sequence per scenario (tiny, raw recordings kept)."""
    folder = tmp_path_factory.mktemp("v2")
    names = ["a00_s1_p00_r0", "a00_s3_p00_r0"]
    build(folder, "tiny", device="cpu", keep_raw=True, only=names)
    return folder


# ------------------------------------------------------------------------------------- noise
def test_self_noise_is_independent_and_the_ambience_diffuse():
    """Scenario 1's noise is the microphones' own (coherence ~0 between neighbours); the office's is
    the diffuse NC-35 field on top of it (coherence ~ sinc(kd), diluted by the self-noise)."""
    d = 0.05
    mics = np.array([[0.0, 0.0, 0.0], [d, 0.0, 0.0]])
    n = int(6 * FS)
    quiet = np.zeros(n)
    got = {}
    for sc in (1, 2):
        plan = Plan(sc, n, FS, (3, 0, sc, 0, 0), Source("target", [Emission(0, quiet, np.array([0.0, 0, 3]))]),
                    [], quiet)
        noise = render(plan, mics, _ideal(2), separate=True)["noise"]
        got[sc] = _coherency(noise[:, 0], noise[:, 1], FS)
    f, c1 = got[1]
    band = (f > 300) & (f < 5500)
    assert np.sqrt(np.mean(c1[band] ** 2)) < 0.1 and abs(np.mean(c1[band])) < 0.03   # independent channels
    f, c2 = got[2]
    diffuse = nc35_psd(f)
    want = np.sinc(2 * f * d / SPEED_OF_SOUND) * diffuse / (diffuse + ph.self_noise_psd())
    sel = (f > 60) & (f < 5500)
    assert np.sqrt(np.mean((c2[sel] - want[sel]) ** 2)) < 0.06
    assert np.min(c2[(f > 60) & (f < 400)]) > 0.8 and np.min(c2[(f > 3000) & (f < 3800)]) < 0.1


def test_ambience_and_sensor_levels_are_the_cited_ones():
    n = int(4 * FS)
    quiet = np.zeros(n)
    mics = np.zeros((1, 3))
    levels = {}
    for sc in (1, 2, 3):
        plan = Plan(sc, n, FS, (5, 0, sc, 0, 0), Source("target", [Emission(0, quiet, np.array([0.0, 0, 3]))]),
                    [], quiet)
        levels[sc] = ph.laeq(render(plan, mics, _ideal(1), separate=True)["noise"][:, 0], FS)
    # self-noise: 29 dBA over 20 Hz-20 kHz (the datasheet's band), white: this band holds a part of it
    f = np.linspace(20.0, 20000.0, 40001)
    a2 = 10 ** (ph.a_weighting_db(f) / 10)
    in_band = 10 * np.log10(np.trapezoid(a2 * (f <= FS / 2), f) / np.trapezoid(a2, f))
    assert abs(levels[1] - (ph.SELF_NOISE_DBA.value + in_band)) < 0.3
    assert abs(levels[2] - 44.2) < 1.0                                     # NC-35 in dBA
    assert 55.0 < levels[3] < 57.0                                         # urban L95 55 dBA + wind


# -------------------------------------------------------------------------------------- rooms
@pytest.mark.parametrize("scenario", [1, 2, 3])
def test_rendered_rt60_is_the_stated_one(scenario):
    t30 = rendered_rt60(MANIFEST_V2, scenario, (0.4, 0.2, 3.0), np.zeros(3))
    stated = ph.ROOMS[scenario].stated_rt60
    if stated:
        assert abs(t30 - stated) <= 0.2 * stated, t30
    else:
        assert t30 < 0.05, t30                                             # no reverberation


def test_image_sources_match_pyroomacoustics(monkeypatch):
    import pyroomacoustics as pra

    import acam.dataset.rooms as rooms

    room = ph.Room("shoebox", (12.0, 9.0, 3.2), (6.0, 3.0, 0.8),
                   tuple((w, (0.2,) * 6) for w in ("x0", "x1", "y0", "y1", "floor", "ceiling")), 0.7, 0.05)
    monkeypatch.setattr(rooms, "AIR_ABSORPTION", (0.0,) * 6)
    mics = np.array([[0.0, 0.0, 0.0], [0.2, -0.1, 0.0]])
    src = np.array([0.5, 0.3, 3.0])
    ours = rirs(room, src, mics, FS)[:, HALF:]
    hpf = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        r = pra.ShoeBox(list(room.dim), fs=int(FS), materials=pra.Material(0.2), max_order=8, air_absorption=False)
        r.add_source(to_room(src, room)[0])
        r.add_microphone_array(pra.MicrophoneArray(to_room(mics, room).T, FS))
        r.compute_rir()
    finally:
        pra.constants.set("rir_hpf_enable", hpf)
    delay = (pra.constants.get("frac_delay_length") - 1) // 2
    n = int(0.035 * FS)                                   # before our fade to the diffuse tail
    f = np.fft.rfftfreq(4096, 1 / FS)
    sel = (f > 100) & (f < 0.8 * FS / 2)
    for m in range(2):
        a = np.fft.rfft(ours[m, :n], 4096)[sel]
        b = np.fft.rfft(np.asarray(r.rir[m][0][delay:delay + n]), 4096)[sel]
        assert np.linalg.norm(a - b) / np.linalg.norm(b) < 0.05


# ------------------------------------------------------------------------- levels and heights
def test_levels_per_action_are_the_cited_ones():
    levels = {}
    for a, name in enumerate(ACTIONS):
        plan, _, _ = plan_v2(_seq(a, 1), TINY, CameraGrid(), 0)
        who = Subject.draw(0, 0)
        levels[name] = ph.laeq(plan.target_signal, FS)
        assert abs(levels[name] - ph.action_level(a, who.loudness)) < 0.01
        assert abs(levels[name] - ph.ACTION_LEVEL[name].value) <= ph.LEVEL_SPREAD_DB.value + 1e-9
    assert max(levels, key=levels.get) == "hammering" and min(levels, key=levels.get) == "peanut breaking"
    assert max(levels.values()) - min(levels.values()) > 40


def test_rendered_level_falls_with_distance_in_the_anechoic_room():
    plan, _, _ = plan_v2(_seq(ACTIONS.index("whistling"), 1), TINY, CameraGrid(), 0)
    centre = np.zeros((1, 3))
    target = render(plan, centre, _ideal(1), separate=True)["target"][:, 0]
    r = np.linalg.norm(plan.target.emissions[0].position)
    want = ph.laeq(plan.target_signal, FS) - 20 * math.log10(r)
    assert abs(ph.laeq(target, FS) - want) < 0.5


def test_source_height_by_action():
    grid = CameraGrid()
    for a, name in enumerate(ACTIONS):
        for subject in (0, 1):
            plan, _, stature = plan_v2(_seq(a, 2, subject), TINY, grid, 0)
            heights = [e.position[1] + ph.ARRAY_HEIGHT.value for e in plan.target.emissions]
            place = ph.SOURCE_PLACE[name]
            want = {"mouth": 1.50 * stature, "hands": 1.20 * stature, "table": 0.80, "floor": 0.01}[place]
            assert np.allclose(heights, want), (name, heights, want)
            assert all(grid.in_view(e.position) for e in plan.target.emissions)
    assert ph.SOURCE_PLACE["speaking"] == ph.SOURCE_PLACE["whistling"] == "mouth"
    assert ph.SOURCE_PLACE["stick dropping"] == "floor" and ph.SOURCE_PLACE["typing"] == "table"


def test_competing_sources_are_of_real_kinds_and_mostly_out_of_view():
    kinds = {2: set(), 3: set()}
    seen = []
    for sc in (2, 3):
        for subject in range(4):
            plan, _, _ = plan_v2({**_seq(0, sc, subject), "n_frames": 72}, TINY, CameraGrid(), 0)
            kinds[sc] |= {s.kind for s in plan.interferers}
            seen += [s.in_view_fraction for s in plan.interferers]
    assert {"talker", "typing"} <= kinds[2] and {"car"} <= kinds[3]
    assert np.mean(seen) < 0.5


# --------------------------------------------------------------------------- files and sensor
def test_dead_channels_are_zero_and_marked_and_the_beam_is_steered(built):
    d = Dataset(built)
    assert physics_of(d.manifest) == 2 and d.manifest["bad_mics"] == [79, 105]
    seq = next(s for s in d.available() if s["scenario"] == 1)
    with h5py.File(d.path(seq)) as f:
        raw, bad, beam, mono = f["raw"][()], f["bad_mics"][()], f["beam"][()], f["mono"][()]
        assert f.attrs["physics"] == 2
    assert np.all(raw[:, 79] == 0) and np.all(raw[:, 105] == 0) and np.all(raw[:, :79].std(0) > 0)
    assert np.flatnonzero(bad).tolist() == [79, 105]
    assert beam.shape == mono.shape and beam.dtype == np.float32
    stems, mono_mic, track = sequence_stems(seq, d.manifest)
    bf = dataset_beamformer(d.manifest, "cpu")
    edges = waypoint_edges(len(mono), FS, TINY.waypoints)
    where = np.array([track[0], track[-1]])
    noise_beam = delay_and_sum(stems["noise"], FS, bf.spec, edges, where)
    gain = 10 * np.log10(np.mean(stems["noise"][:, mono_mic] ** 2) / np.mean(noise_beam ** 2))
    assert abs(gain - 10 * np.log10(126)) < 1.0                          # independent noise: 126 live mics
    target_beam = delay_and_sum(stems["target"], FS, bf.spec, edges, where)
    plan, _, _ = plan_v2(seq, TINY, CameraGrid(), 0)
    centre = render(plan, np.zeros((1, 3)), _ideal(1), separate=True)["target"][:, 0]   # an ideal mic there
    lvl = 10 * np.log10(np.mean(target_beam ** 2) / np.mean(centre ** 2))
    assert abs(lvl) < 0.3 and np.corrcoef(target_beam, centre)[0, 1] > 0.98


def test_sensor_spread_is_the_cited_one():
    s = Sensor.draw(0, 20000)
    gain_db = 20 * np.log10(s.gain)
    assert abs(gain_db.std() - 0.20) < 0.01 and np.abs(gain_db).max() <= 1.0
    phase_deg = s.delay * 1000.0 * 360
    assert abs(phase_deg.std() - 0.42) < 0.02
    assert s.dead == (79, 105)


# ---------------------------------------------------------------------------------- recordings
def _sounds_folder(root, skip=()):
    t = np.arange(8000) / 16000
    for i, name in enumerate(ACTIONS):
        if name in skip:
            continue
        d = root / name.replace(" ", "_")
        d.mkdir(parents=True)
        tone = (np.sin(2 * np.pi * (500 + 200 * i) * t) * (t < 0.3) * 12000).astype(np.int16)
        scipy.io.wavfile.write(d / "take1.wav", 16000, tone)
    return root


def test_sounds_folder_is_rendered_at_the_cited_level(tmp_path):
    folder = _sounds_folder(tmp_path / "sounds")
    out = tmp_path / "ds"
    a = ACTIONS.index("knocking")
    build(out, "tiny", device="cpu", sounds=str(folder), only=[f"a{a:02d}_s1_p00_r0"])
    d = Dataset(out)
    assert d.manifest["sounds"]["folder"] == str(folder)
    seq = d.available()[0]
    with h5py.File(d.path(seq)) as f:
        mono = f["mono"][()]
    f_, p = scipy.signal.welch(mono, FS, nperseg=2048)
    assert abs(f_[np.argmax(p)] - (500 + 200 * a)) < 20                    # the user's tone, not a synthesis
    plan, _, _ = plan_v2(seq, TINY, CameraGrid(), 0, sounds_of(d.manifest))
    assert abs(ph.laeq(plan.target_signal, FS) - ph.action_level(a, Subject.draw(0, 0).loudness)) < 0.01


def test_missing_action_in_sounds_folder_is_named_in_one_line(tmp_path):
    folder = _sounds_folder(tmp_path / "sounds", skip=("typing",))
    r = CliRunner().invoke(acam, ["dataset", "build", "--preset", "tiny", "-o", str(tmp_path / "ds"),
                                  "--sounds", str(folder), "--device", "cpu"])
    assert r.exit_code != 0
    line = r.output.strip()
    assert "\n" not in line and "'typing'" in line and "clapping" not in line
    assert not (tmp_path / "ds").exists()
    with pytest.raises(AcamError, match="physics=2"):
        build(tmp_path / "v1", "tiny", physics=1, sounds=str(folder))


# --------------------------------------------------------------------------------- diagnose
@pytest.mark.slow
def test_diagnose_matches_a_hand_computation(built, tmp_path):
    import shutil

    one = tmp_path / "one"
    shutil.copytree(built, one)
    for s in Dataset(one).available():
        if s["scenario"] != 3:
            os.remove(Dataset(one).path(s))
    report = diagnose(one, device="cpu")
    assert len(report["sequences"]) == 1
    row = report["sequences"][0]
    d = Dataset(one)
    seq = d.available()[0]
    stems, mono, track = sequence_stems(seq, d.manifest)
    with h5py.File(d.path(seq)) as f:
        raw = f["raw"][()]
    total = stems["target"] + stems["interferers"] + stems["noise"]
    assert np.abs(total - raw).max() <= 1e-5 * np.abs(raw).max()            # the parts are the recording
    L, n_frames = 1024, seq["n_frames"]
    win = scipy.signal.get_window(("tukey", 0.75), L, fftbins=True)
    k = np.arange(512) * FS / 1024
    band = (k >= BAND[0]) & (k <= BAND[1])

    def mono_energy(x):
        spec = np.abs(np.fft.rfft(x[: n_frames * L].reshape(n_frames, L) * win, axis=1)[:, :512]) ** 2
        return spec[:, band].sum()

    e = {name: mono_energy(v[:, mono].astype(np.float64)) for name, v in stems.items()}
    assert row["snr_mono"] == pytest.approx(10 * np.log10(e["target"] / e["noise"]), abs=1e-4)
    assert row["sir_mono"] == pytest.approx(10 * np.log10(e["target"] / e["interferers"]), abs=1e-4)
    weights = np.ones(128)
    weights[[79, 105]] = 0
    bf = Beamformer(SteeringSpec(default_array(), CameraGrid(), FS, 512, weights=weights), 12.0, "tukey:0.75",
                    device="cpu")
    grid = CameraGrid()
    pix = {}
    for name, v in stems.items():
        cube = bf.process(v[: n_frames * L].reshape(n_frames, L, -1))
        pix[name] = sum(cube[t, grid.pixel_of(track[t])[0], grid.pixel_of(track[t])[1], band].astype(np.float64).sum()
                        for t in range(n_frames))
    assert row["snr_pixel"] == pytest.approx(10 * np.log10(pix["target"] / pix["noise"]), abs=1e-3)
    assert row["sir_pixel"] == pytest.approx(10 * np.log10(pix["target"] / pix["interferers"]), abs=1e-3)
    assert row["gain"] == pytest.approx(row["snr_pixel"] - row["snr_mono"])
    assert row["target_dba"] == pytest.approx(ph.laeq(stems["target"][:, mono], FS), abs=1e-6)
    assert report["scenarios"]["3"]["rt60"] < 0.05
    png = write(report, tmp_path / "d.json")
    assert png.endswith("d.png") and os.path.getsize(png) > 10000
    assert json.loads((tmp_path / "d.json").read_text())["sequences"][0]["name"] == seq["name"]
    assert "SNR mono" in format_table(report)
    r = CliRunner().invoke(acam, ["dataset", "diagnose", str(tmp_path)])
    assert r.exit_code != 0 and "not a dataset folder" in r.output and "Traceback" not in r.output


# ------------------------------------------------------------------------------- versions
def test_version_1_still_builds_and_loads(tmp_path):
    out = tmp_path / "v1"
    build(out, "tiny", device="cpu", physics=1, only=["a00_s1_p00_r0"])
    d = Dataset(out)
    assert physics_of(d.manifest) == 1
    with h5py.File(d.path(d.available()[0])) as f:
        assert "beam" not in f and f.attrs["physics"] == 1
    crop = d.crops(None, 1.0, 1)[0]
    assert read_crop(crop, ("mfcc", "mono"))["mono"].shape == (12 * 1024,)
    m = json.loads((out / "manifest.json").read_text())
    del m["physics"]                                                        # made before versions were recorded
    (out / "manifest.json").write_text(json.dumps(m))
    assert physics_of(Dataset(out).manifest) == 1
    build(out, "tiny", device="cpu", physics=1, only=["a00_s1_p00_r0"])     # resumes as version 1
    with pytest.raises(AcamError, match="different dataset"):
        build(out, "tiny", device="cpu", physics=2)


# ---------------------------------------------------------------------------------- video
def test_video_moves_with_what_is_seen():
    n_frames, rng = 60, np.random.default_rng(0)

    def motion(name):
        a = ACTIONS.index(name)
        x, trace = synthesise_traced(a, n_frames / 12, FS, Subject.draw(0, 0), np.random.default_rng(a))
        env = np.sqrt(np.mean(x.reshape(n_frames, -1) ** 2, axis=1))
        return motion_v2(a, n_frames, FS, 12.0, trace, rng), env, trace

    m, env, _ = motion("speaking")
    assert m["mouth"].std() > 0.003 and np.ptp(m["hands"]) == 0 and np.ptp(m["lift"]) == 0     # lips, not hands
    m, env, _ = motion("whistling")
    assert all(np.all(m[k] == m[k][0]) for k in ("mouth", "hands", "lift", "prop"))       # nothing tied to sound
    m, env, _ = motion("typing")
    assert abs(np.corrcoef(np.abs(m["jitter"]).sum(1), env)[0, 1]) < 0.4                  # fingers: random
    m, env, trace = motion("clapping")
    at_claps = (np.asarray(trace.events) / FS * 12).astype(int)
    assert m["hands"][at_claps].mean() < 0.5 * m["hands"].max()                          # hands meet at claps
