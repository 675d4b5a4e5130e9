"""The paper's protocol done right: splits, test cells, the authors' preprocessing, the controls and
the statistics, each against a hand computation or a property that fails when it is wrong."""

from __future__ import annotations

import json
import math
import os
from itertools import product

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from acam.dataset.store import Dataset, assign_splits, block_splits, read_crop, split_record  # noqa: E402
from acam.learn import stats  # noqa: E402
from acam.learn.data import CropDataset, hearnet_spectrogram, input_stats, mono_mfcc, student_waveform  # noqa: E402


def _seqs(subjects: int, seconds: float = 10.0, scenarios=(1, 2, 3), actions=range(14)):
    return [{"name": f"a{a:02d}_s{s}_p{p:02d}_r0", "file": f"sequences/a{a:02d}_s{s}_p{p:02d}_r0.h5",
             "scenario": s, "action": a, "subject": p, "repetition": 0, "n_frames": int(seconds * 12)}
            for s in scenarios for a in actions for p in range(subjects)]


# ----------------------------------------------------------------------------------------------- splits
@pytest.mark.parametrize("subjects", [3, 4, 9, 27])
def test_split_is_stratified_by_scenario_and_action(subjects):
    seqs = _seqs(subjects)
    split = assign_splits(seqs)
    for s, a in product((1, 2, 3), range(14)):
        cell = [split[q["name"]] for q in seqs if q["scenario"] == s and q["action"] == a]
        assert {"train", "val", "test"} <= set(cell), (s, a, cell)
        assert cell.count("val") == cell.count("test") == max(1, round(0.1 * subjects))
    # about 80/10/10 overall when cells are large enough
    if subjects >= 9:
        assert sum(v == "train" for v in split.values()) / len(split) >= 0.75


def test_small_cells_fill_training_first_and_a_tiny_scenario_still_tests():
    seqs = _seqs(2, actions=[0]) + _seqs(1, actions=[1])            # cells of 2 and of 1
    split = assign_splits(seqs + _seqs(3, actions=[2]))
    assert [split[f"a00_s1_p0{p}_r0"] for p in range(2)].count("train") == 1
    assert split["a01_s1_p00_r0"] == "train"
    # a scenario of one-sequence cells only (the tiny preset): one cell in ten to val and to test
    tiny = assign_splits(_seqs(1))
    for s in (1, 2, 3):
        mine = [tiny[q["name"]] for q in _seqs(1) if q["scenario"] == s]
        assert mine.count("val") == mine.count("test") == 1 and mine.count("train") == 12


def test_split_is_stable_for_a_seed_and_cells_are_independent():
    seqs = _seqs(9)
    a, b = assign_splits(seqs), assign_splits(list(reversed(seqs)))
    assert a == b                                           # order of the manifest does not matter
    assert assign_splits(seqs, seed=7) != a                 # the seed matters
    more = assign_splits(seqs + [dict(seqs[0], name="extra", action=5, scenario=2)])
    untouched = [q["name"] for q in seqs if not (q["scenario"] == 2 and q["action"] == 5)]
    assert all(more[n] == a[n] for n in untouched)          # adding to one cell leaves the others


def test_block_split_reproduces_the_authors_counts():
    """30 s recordings in 10 s blocks, RandomState(42), int() truncation: 302/37/39 blocks per scenario
    list and 907/113/114 for all scenarios (the arithmetic of utils/generate_lists.py)."""
    b = block_splits(_seqs(9, seconds=30.0))
    count = lambda d: [sum(v == s for v in d.values()) for s in ("train", "val", "test")]  # noqa: E731
    assert count(b["all"]) == [907, 113, 114]
    assert count(b["1"]) == count(b["2"]) == count(b["3"]) == [302, 37, 39]
    # the list order and the shuffle are numpy's legacy generator on the sorted blocks
    mine = sorted(((q["scenario"], q["subject"], q["action"], q["name"]) for q in _seqs(9, 30.0)
                   if q["scenario"] == 1))
    order = np.random.RandomState(42).permutation(len(mine) * 3)
    first_train = order[0]
    assert b["1"][(mine[first_train // 3][3], first_train % 3)] == "train"


def _write_dataset(folder, seqs, with_beam=False, manifest_extra=None, fill=None, stratified=False):
    """Sequence files of random MFCC and microphone signals; splits cycle train/val/test unless
    ``stratified``."""
    os.makedirs(os.path.join(folder, "sequences"), exist_ok=True)
    rng = np.random.default_rng(0)
    for q in seqs:
        n = q["n_frames"]
        with h5py.File(os.path.join(folder, q["file"]), "w") as f:
            f.create_dataset("mfcc", data=rng.standard_normal((n, 36, 48, 12)).astype(np.float32))
            mono = rng.standard_normal(n * 1024).astype(np.float32)
            f.create_dataset("mono", data=mono)
            if with_beam:
                f.create_dataset("beam", data=(0.5 * mono + 0.1).astype(np.float32))
            f.attrs.update({"action": q["action"], "scenario": q["scenario"], "frame_len": 1024,
                            "sample_freq": 12288.0, "frame_rate": 12.0})
            if fill:
                fill(f, q)
    m = {"kind": "acam-dataset", "sample_freq": 12288.0, "frame_rate": 12.0, "window": "tukey:0.75",
         "sequences": [dict(q, split=s) for q, s in zip(seqs, ["train", "val", "test"] * len(seqs))]}
    if stratified:
        split = assign_splits(seqs)
        m["sequences"] = [dict(q, split=split[q["name"]]) for q in seqs]
    m.update(manifest_extra or {})
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(m, f)
    return folder


def test_an_old_manifest_is_resplit_in_memory_with_a_note(tmp_path, capsys):
    folder = _write_dataset(str(tmp_path / "old"), _seqs(3, seconds=1, scenarios=(1,), actions=(0, 1)))
    before = (tmp_path / "old" / "manifest.json").read_bytes()
    d = Dataset(folder)
    err = capsys.readouterr().err
    assert "predates the stratified split" in err and "re-split in memory" in err
    for a in (0, 1):
        assert sorted(s["split"] for s in d.sequences if s["action"] == a) == ["test", "train", "val"]
    assert (tmp_path / "old" / "manifest.json").read_bytes() == before      # never rewritten
    Dataset(folder)
    assert capsys.readouterr().err == ""                                     # said once per folder
    # a current manifest is taken as it is, silently
    _write_dataset(str(tmp_path / "new"), _seqs(3, seconds=1, scenarios=(1,), actions=(0,)),
                   manifest_extra={"splits": split_record()})
    assert [s["split"] for s in Dataset(tmp_path / "new").sequences] == ["train", "val", "test"]
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------ test cells
def test_cross_scenario_cells_use_every_sequence_of_the_unseen_scenario(tmp_path):
    from acam.learn.evaluate import evaluate_run, test_cells
    from acam.learn.train import TrainConfig, fit

    assert test_cells([1]) == [("1", "test", [1]), ("2", None, [2]), ("3", None, [3])]
    assert test_cells([1, 2, 3])[-1] == ("all", "test", [1, 2, 3])
    seqs = _seqs(3, seconds=10.0 / 12 * 7, actions=(0, 1))           # 70 frames: one 5 s window each
    folder = _write_dataset(str(tmp_path / "d"), seqs, manifest_extra={"splits": split_record()}, stratified=True)
    fit(TrainConfig(model="hearnet", data=folder, train_on=[1], epochs=1, batch_size=8, lr=1e-3, seed=0,
                    crops_per_sequence=1, device="cpu"), str(tmp_path / "r"))
    res = evaluate_run(str(tmp_path / "r"), device="cpu")
    assert res["1"]["window"]["sequences"] == 2 and res["1"]["window"]["split"] == "test"
    for unseen in ("2", "3"):
        r = res[unseen]["window"]
        assert r["split"] == "all sequences" and r["sequences"] == 6 and r["windows"] == 6
        assert set(r["per_sequence"]) == {q["name"] for q in seqs if str(q["scenario"]) == unseen}


def test_windows_tile_each_sequence_without_overlap(tmp_path):
    seqs = _seqs(1, seconds=137 / 12, scenarios=(1,), actions=(0,))
    d = Dataset(_write_dataset(str(tmp_path / "d"), seqs, manifest_extra={"splits": split_record()}))
    w = d.windows(None, 5.0)
    assert [c.start for c in w] == [0, 60] and all(c.n_frames == 60 for c in w)
    assert [c.start for c in d.windows(None, 1.0)] == list(range(0, 132, 12))


# ----------------------------------------------------------------------------------- preprocessing
def test_hearnet_preprocessing_equals_a_hand_computation():
    fs = 12288.0
    t = np.arange(int(5 * fs)) / fs
    x = 0.02 * np.sin(2 * np.pi * 1000.0 * t) + 0.005 * np.sin(2 * np.pi * 3100.0 * t)
    x[int(2.5 * fs)] += 0.5                                    # a click: the peak
    w = student_waveform(x, fs, 5.0)
    import scipy.signal

    hand = scipy.signal.resample_poly(x / np.abs(x).max(), 22050 // 6, 12288 // 6)   # gcd(12288, 22050) = 6
    hand = hand / np.abs(hand).max() * 256
    assert len(w) == 110250 == len(hand)
    np.testing.assert_allclose(w, hand, atol=1e-3)
    assert np.abs(w).max() == pytest.approx(256.0, rel=1e-6)
    spec = hearnet_spectrogram(w)
    assert spec.shape == (500, 257)                            # 1 + (110250 - 440) // 220 frames exactly
    hann = [0.5 - 0.5 * math.cos(2 * math.pi * n / 440) for n in range(440)]
    for frame in (0, 123, 499):
        seg = w[220 * frame: 220 * frame + 440].astype(np.float64)     # no centring: frame t starts at 220 t
        for k in (0, 23, 66, 256):
            re = sum(hann[n] * seg[n] * math.cos(2 * math.pi * k * n / 512) for n in range(440))
            im = sum(hann[n] * seg[n] * math.sin(2 * math.pi * k * n / 512) for n in range(440))
            assert spec[frame, k] == pytest.approx(math.hypot(re, im), rel=1e-4, abs=1e-3)


def test_stft_is_not_centred():
    w = np.zeros(110250, np.float32)
    w[220 * 10 + 100] = 1.0              # inside frames 9 (1980..2420) and 10 (2200..2640) only
    energy = hearnet_spectrogram(w).sum(1)
    assert set(np.flatnonzero(energy > 0)) == {9, 10}


def test_minmax_statistics_and_their_use_in_hearnet(tmp_path):
    from acam.learn.models import HearNet

    seqs = _seqs(1, seconds=5.0, scenarios=(1,), actions=(0, 1))
    d = Dataset(_write_dataset(str(tmp_path / "d"), seqs, manifest_extra={"splits": split_record()}))
    ds = CropDataset(d, "spectrogram", d.windows(None, 5.0), cache=False)
    st = input_stats("minmax", ds)
    specs = np.stack([ds[i][0].numpy() for i in range(len(ds))])
    np.testing.assert_allclose(st["min"], specs.min((0, 1)), rtol=1e-6)
    np.testing.assert_allclose(st["max"], specs.max((0, 1)), rtol=1e-6)
    m = HearNet()
    m.set_stats(st)
    seen = {}
    m.conv1.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0]))
    m(torch.from_numpy(specs[:1]))
    want = (specs[0] - np.array(st["min"])) / (np.array(st["max"]) - np.array(st["min"]))
    np.testing.assert_allclose(seen["x"][0].T.numpy(), want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------- controls
def test_mono_control_carries_no_spatial_information(tmp_path):
    seqs = _seqs(1, seconds=1.0, scenarios=(1,), actions=(0, 1))
    d = Dataset(_write_dataset(str(tmp_path / "d"), seqs, manifest_extra={"splits": split_record()}))
    # a second dataset whose acoustic images differ completely, same microphone track
    e = Dataset(_write_dataset(str(tmp_path / "e"), seqs, manifest_extra={"splits": split_record()},
                               fill=lambda f, q: f["mfcc"].write_direct(np.zeros(f["mfcc"].shape, np.float32))))
    crop = d.windows(None, 1.0)[0]
    x = CropDataset(d, "mfcc_mono", [crop], cache=False)[0][0].numpy()
    assert x.shape == (12, 36, 48, 12)
    assert np.all(x == x[:, :1, :1, :])                           # every pixel the same
    other = e.windows(None, 1.0)[0]
    y = CropDataset(e, "mfcc_mono", [other], cache=False)[0][0].numpy()
    np.testing.assert_array_equal(x, y)                           # the acoustic image plays no part
    assert not np.array_equal(CropDataset(d, "mfcc", [crop], cache=False)[0][0].numpy(),
                              CropDataset(e, "mfcc", [other], cache=False)[0][0].numpy())
    # the values are the microphone's MFCC (lab units, Tukey window), computed here independently
    from test_dataset import independent_mfcc
    import scipy.signal

    mono = read_crop(crop, ("mono",))["mono"].astype(np.float64).reshape(12, 1024)
    power = np.abs(np.fft.rfft(mono * scipy.signal.get_window(("tukey", 0.75), 1024), axis=-1))[:, :512] ** 2
    np.testing.assert_allclose(x[:, 0, 0], independent_mfcc(power, 12.5), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(mono_mfcc(mono.reshape(-1), 1024), x[:, 0, 0], rtol=1e-6)


def test_oracle_input_is_the_source_beam(tmp_path):
    seqs = _seqs(1, seconds=3.0, scenarios=(1,), actions=(0,))
    d = Dataset(_write_dataset(str(tmp_path / "d"), seqs, with_beam=True, manifest_extra={"splits": split_record()}))
    crop = d.crop(d.sequences[0], 7, 60)                           # wraps cyclically past 36 frames
    got = CropDataset(d, "spectrogram_beam", [crop], cache=False)[0][0].numpy()
    with h5py.File(crop.file) as f:
        beam = f["beam"][()]
    idx = (7 + np.arange(60)) % 36
    want = hearnet_spectrogram(student_waveform(beam.reshape(36, 1024)[idx].reshape(-1), 12288.0, 5.0))
    np.testing.assert_array_equal(got, want)
    mono = CropDataset(d, "spectrogram", [crop], cache=False)[0][0].numpy()
    assert not np.allclose(got, mono)
    # a dataset without beam: one line naming the missing dataset
    e = Dataset(_write_dataset(str(tmp_path / "e"), seqs, manifest_extra={"splits": split_record()}))
    with pytest.raises(Exception, match=r"no 'beam' dataset \(the oracle control needs") as exc:
        CropDataset(e, "spectrogram_beam", [e.crop(e.sequences[0], 0, 60)], cache=False)[0]
    assert "\n" not in str(exc.value)
    from click.testing import CliRunner

    from acam.cli import learn_group

    r = CliRunner().invoke(learn_group, ["reproduce", "--data", str(tmp_path / "e"), "-o", str(tmp_path / "o"),
                                         "--controls", "oracle", "--device", "cpu"])
    assert r.exit_code != 0 and "no 'beam' dataset" in r.output and not (tmp_path / "o").exists()
    assert len(r.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ intervals
def test_wilson_interval_by_hand():
    lo, hi = stats.wilson_interval(8, 10)
    z = 1.959963984540054
    p, n = 0.8, 10
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((c - h, c + h), rel=1e-12)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)      # the textbook values
    assert stats.wilson_interval(0, 10)[0] == 0.0
    assert stats.wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)


def test_bootstrap_over_sequences_matches_exact_enumeration():
    """Five sequences of two windows (2/2, 0/2, 1/2, 2/2, 1/2): all 5^5 equally likely resamples,
    enumerated; the percentile interval is their 2.5% and 97.5% quantiles, 0.3 and 0.9 (the
    distribution's jumps lie well away from both levels, so 40 000 draws find them)."""
    correct, total = [2, 0, 1, 2, 1], [2] * 5
    exact = [sum(correct[i] for i in r) / sum(total[i] for i in r) for r in product(range(5), repeat=5)]
    want = np.quantile(exact, [0.025, 0.975], method="inverted_cdf")
    assert list(want) == pytest.approx([0.3, 0.9])
    assert stats.bootstrap_interval(correct, total, n_boot=40000, seed=1) == pytest.approx(tuple(want))
    assert stats.bootstrap_interval([3, 4], [3, 4]) == (1.0, 1.0)
    # windows of one sequence move together: 10 sequences of 10 windows are wider than 100 windows
    seq = stats.bootstrap_interval([10] * 5 + [0] * 5, [10] * 10)
    win = stats.bootstrap_interval([1] * 50 + [0] * 50, [1] * 100)
    assert seq[1] - seq[0] > 2 * (win[1] - win[0])


def test_sequence_votes_by_hand():
    labels = [0, 0, 0, 1, 1, 2, 2]
    preds = [0, 0, 3, 1, 2, 2, 2]
    seqs = ["a", "a", "a", "b", "b", "c", "c"]
    assert stats.sequence_votes(labels, preds, seqs) == (2, 3)     # b ties 1:1, so it is not right


# ------------------------------------------------------------------------------ video teachers, grid
def test_init_weights_freeze_the_video_backbone(tmp_path):
    from acam.learn.models import AVNet, ResNet50
    from acam.learn.train import TrainConfig, _load_init, make_optimizer

    torch.manual_seed(0)
    imagenet = ResNet50(1000).state_dict()                 # stands in for torchvision's ImageNet weights
    path = str(tmp_path / "r50.pt")
    torch.save(imagenet, path)
    cfg = TrainConfig(model="resnet50", data="x", init=path)
    assert cfg.model_config().options == {"temporal": False, "pretrained": True}     # every option written out
    m = ResNet50(14, **cfg.model_config().options)
    _load_init(m, path)
    assert torch.equal(m.layer3[0].conv2.weight, imagenet["layer3.0.conv2.weight"])
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = make_optimizer(m, cfg)
    m.train()
    x = torch.randint(0, 256, (2, 2, 3, 96, 128), dtype=torch.uint8)
    torch.nn.functional.cross_entropy(m(x).mean(1), torch.tensor([1, 2])).backward()
    opt.step()
    after = m.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"fc.weight", "fc.bias"}              # BN statistics included: nothing else moves
    av = AVNet(14, pretrained=True)
    _load_init(av, path)                                    # a ResNet-50 state dict goes into the video branch
    assert torch.equal(av.video.layer1[0].conv1.weight, imagenet["layer1.0.conv1.weight"])
    assert not av.video.fc.weight.shape == imagenet["fc.weight"].shape       # its 1024 projection is new


def test_grid_chooses_on_validation_and_reuses_the_winner(tiny_dataset, tmp_path, monkeypatch):
    import csv

    from acam.learn import reproduce as R

    monkeypatch.setattr(R, "GRID", {"lr": (1e-2, 1e-4), "temperature": (1.0,), "lam": (0.5,)})
    proto = R.Protocol(epochs=2, seeds=(0, 1), train_sets=("1",), teachers=("dualcamnet",), students=("hearnet",),
                       distill_from=("dualcamnet",), crops=1, batch_size=8, grid=True, device="cpu")
    out = tmp_path / "g"
    res = R.reproduce(str(tiny_dataset), str(out), proto)
    assert len(res[("hearnet", "D", "1")]) == 2                       # both seeds evaluated
    for sup in ("G", "D"):
        grid = out / "grid" / "train_1" / f"hearnet_{sup}"
        val = {}
        for run in os.listdir(grid):
            with open(grid / run / "log.csv", newline="") as f:
                val[run] = max(float(r["val_acc"]) for r in csv.DictReader(f))
        order = [f"lr{lr:g}_T1_l0.5" for lr in (1e-2, 1e-4)]
        assert sorted(val) == sorted(order)
        best = max(order, key=val.get)                     # the first of equals, in grid order
        with open(out / "seed1" / "train_1" / f"hearnet_{sup}" / "config.json") as f:
            chosen = json.load(f)
        assert chosen["lr"] == (1e-2 if best == order[0] else 1e-4) and chosen["seed"] == 1
        first = out / "seed0" / "train_1" / f"hearnet_{sup}"
        assert (first / "log.csv").read_text() == (grid / best / "log.csv").read_text()      # reused, not rerun
    assert "Settings chosen on validation" in (out / "tables.md").read_text()


def test_block_split_segments_crops_and_windows(tmp_path):
    """--split blocks: 10 s blocks of 30 s recordings, a list per training set; crops stay inside
    their block, windows tile it."""
    seqs = _seqs(9, seconds=30.0, scenarios=(1, 2))
    folder = tmp_path / "d"
    (folder / "sequences").mkdir(parents=True)
    for q in seqs:
        (folder / q["file"]).touch()                       # segments need the files to exist, not their data
    with open(folder / "manifest.json", "w") as f:
        json.dump({"kind": "acam-dataset", "frame_rate": 12.0, "splits": split_record(),
                   "sequences": [dict(q, split="train") for q in seqs]}, f)
    d = Dataset(folder, "blocks")
    lists = block_splits(seqs)
    test1 = d.segments("test", [1], [1])
    assert {(g.seq["name"], g.start // 120) for g in test1} == {k for k, v in lists["1"].items() if v == "test"}
    assert all(g.n_frames == 120 for g in test1)
    both = d.segments("test", [1, 2], [1, 2, 3])               # the all-scenarios list, its scenario-1 and -2 blocks
    assert {(g.seq["name"], g.start // 120) for g in both} == {k for k, v in lists["all"].items() if v == "test"
                                                              and "_s3_" not in k[0]}
    for c in d.crops("train", 5.0, 4, seed=3, scenarios=[1], train_on=[1]):
        block = c.start // 120
        assert lists["1"][(c.sequence, block)] == "train" and c.start + c.n_frames <= 120 * (block + 1)
    assert len(d.windows("val", 5.0, [1], [1])) == 2 * len(d.segments("val", [1], [1]))
    assert len(d.segments(None, [2])) == 9 * 14                  # whole recordings when no split is asked
    with pytest.raises(Exception, match="one scenario or all three"):
        d.segments("test", [1, 2], [1, 2])


def test_a_control_input_must_fit_its_model():
    from acam.learn.train import TrainConfig

    TrainConfig(model="dualcamnet", data="x", inputs="mfcc_mono").check()
    TrainConfig(model="hearnet", data="x", inputs="spectrogram_beam").check()
    with pytest.raises(Exception, match="does not fit 'hearnet'.*spectrogram_beam"):
        TrainConfig(model="hearnet", data="x", inputs="mfcc_mono").check()
    with pytest.raises(Exception, match="does not fit 'soundnet'"):
        TrainConfig(model="soundnet", data="x", inputs="spectrogram_beam").check()


def test_paired_bootstrap_by_hand():
    """A constant per-sequence difference gives that difference as both ends; a hand enumeration of
    all 3^3 resamples of three sequences gives the percentile interval."""
    assert stats.paired_bootstrap_interval([2, 1, 2], [2] * 3, [1, 0, 1], [2] * 3) == pytest.approx((0.5, 0.5))
    ca, cb, t = [2, 0, 1], [0, 0, 2], [2] * 3         # differences per sequence: +1, 0, -0.5
    exact = [(sum(ca[i] for i in r) - sum(cb[i] for i in r)) / (2 * len(r)) for r in product(range(3), repeat=3)]
    want = np.quantile(exact, [0.025, 0.975], method="inverted_cdf")
    assert stats.paired_bootstrap_interval(ca, t, cb, t, n_boot=40000, seed=2) == pytest.approx(tuple(want))
    # pairing removes what both share: the unpaired intervals overlap, the paired one excludes 0
    a = [10, 0, 10, 0, 10, 0, 10, 0, 10, 1]
    b = [9, 0, 9, 0, 9, 0, 9, 0, 9, 0]
    lo, hi = stats.paired_bootstrap_interval(a, [10] * 10, b, [10] * 10)
    assert lo > 0
    assert stats.bootstrap_interval(b, [10] * 10)[1] > stats.bootstrap_interval(a, [10] * 10)[0]
    with pytest.raises(ValueError):
        stats.paired_bootstrap_interval([1], [1], [1, 1], [1, 1])


def test_report_has_paired_differences():
    """The paired table: the difference of two columns' pooled accuracies on the same sequences."""
    from acam.learn.reproduce import paired_table

    def ev(per_seq):
        n = sum(t for _, t in per_seq.values())
        return {"all": {"window": {"per_sequence": per_seq, "accuracy": sum(c for c, _ in per_seq.values()) / n}}}

    results = {("hearnet", "oracle", "all"): [ev({"a": [2, 2], "b": [1, 2]})],
               ("hearnet", "G", "all"): [ev({"a": [1, 2], "b": [0, 2]})]}
    text = paired_table(results, "window", ("all",))
    assert "HearNet oracle - HearNet G" in text
    assert "| all scenarios | all scenarios | 2 | +0.500 [+0.500, +0.500] |" in text
    assert paired_table({("hearnet", "G", "all"): [ev({"a": [1, 2]})]}, "window", ("all",)) is None
    results[("dualcamnet", "-", "all")] = [ev({"a": [2, 2], "b": [2, 2]})]
    results[("dualcamnet", "mono", "all")] = [ev({"a": [1, 2], "b": [2, 2]})]
    teachers = paired_table(results, "window", ("all",), teachers_only=True)
    assert "DualCamNet D - DualCamNet mono" in teachers and "HearNet" not in teachers
    assert "| 2 | +0.250 [+0.000, +0.500] |" in teachers
