"""learn: models, the distillation loss against hand-computed values, the training loop, evaluation,
and the protocol on the tiny dataset."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from acam.learn.losses import distillation_loss  # noqa: E402
from acam.learn.models import REGISTRY, ModelConfig, ResNet50, TemporalResNet50, build_model  # noqa: E402


def test_resnet50_keeps_torchvisions_parameter_layout():
    m = ResNet50(14)
    assert sum(p.numel() for p in m.parameters()) == 23_536_718
    names = dict(m.named_parameters())
    for key, shape in [("conv1.weight", (64, 3, 7, 7)), ("layer1.0.downsample.0.weight", (256, 64, 1, 1)),
                       ("layer4.2.conv3.weight", (2048, 512, 1, 1)), ("fc.weight", (14, 2048))]:
        assert tuple(names[key].shape) == shape


def test_temporal_convs_start_as_identity():
    torch.manual_seed(0)
    plain, temporal = ResNet50(14).eval(), TemporalResNet50(14).eval()
    missing, unexpected = temporal.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".temporal." in k for k in missing) and len(missing) == 8   # weight, bias
    assert all(float(temporal.get_parameter(k).detach().abs().sum()) == 0 for k in missing if k.endswith("bias"))
    x = torch.rand(2, 12, 3, 32, 40)
    with torch.no_grad():
        a = plain(x[:, [0, 2, 5, 8, 11]]).mean(1)          # the 5 frames' logits averaged, as the authors'
        b = temporal(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, x", [
    ("dualcamnet", lambda: torch.randn(2, 12, 36, 48, 12)),
    ("hearnet", lambda: torch.randn(2, 500, 257)),
    ("soundnet", lambda: torch.randn(2, 110250)),
    ("resnet50", lambda: torch.rand(1, 2, 3, 48, 64)),
    ("temporal_resnet50", lambda: torch.rand(1, 12, 3, 48, 64)),      # 5 of 12 frames
    ("avnet", lambda: (torch.randn(1, 2, 36, 48, 12), torch.rand(1, 2, 3, 48, 64))),
])
def test_models_from_the_registry(name, x):
    m = build_model(ModelConfig(name))
    assert isinstance(m, REGISTRY[name])
    out = m(x())
    assert out.shape[-1] == 14 and torch.isfinite(out).all()


def test_models_from_the_registry_cover_every_name():
    tested = {"dualcamnet", "hearnet", "soundnet", "resnet50", "temporal_resnet50", "avnet"}
    assert set(REGISTRY) == tested


def _checkpoint(mc: ModelConfig, cfg) -> dict:
    torch.manual_seed(0)
    return {"model_config": mc.as_dict(), "model": build_model(mc).state_dict(), "train_config": asdict(cfg),
            "mfcc_stats": None, "epoch": 0, "history": [], "val_acc": 0.0}


def test_checkpoints_carry_their_architecture_and_old_ones_still_load(tmp_path):
    from acam.learn.checkpoint import build_from, check_run, load_checkpoint, save_checkpoint
    from acam.learn.train import TrainConfig

    cfg = TrainConfig(model="dualcamnet", data="x", model_options={"standardise": True})
    mc = cfg.model_config()
    assert mc.options == {"height": 36, "width": 48, "depth": 12, "standardise": True}
    assert ModelConfig("soundnet").full().options == {"bn_momentum": 0.1}
    new, old = tmp_path / "new.pt", tmp_path / "old.pt"
    save_checkpoint(_checkpoint(mc, cfg), str(new))
    save_checkpoint(_checkpoint(ModelConfig("dualcamnet"), cfg), str(old))   # before: options left empty
    for path in (new, old):
        raw = torch.load(path, weights_only=True)              # plain data: no code runs on load
        ck = check_run(load_checkpoint(str(path)), str(path))
        assert raw["model_config"] == ck["model_config"]
        model = build_from(ck, str(path))
        assert isinstance(model, REGISTRY["dualcamnet"])
    assert torch.load(new, weights_only=True)["model_config"]["options"]["height"] == 36
    assert build_from(check_run(load_checkpoint(str(new)), str(new)), str(new)).stats_kind == "standard"
    sn = ModelConfig("soundnet").full()
    path = tmp_path / "sn.pt"
    save_checkpoint(_checkpoint(sn, replace(cfg, model="soundnet", model_options={})), str(path))
    assert isinstance(build_from(check_run(load_checkpoint(str(path)), str(path)), str(path)), REGISTRY["soundnet"])


def test_train_config_is_frozen_and_keyword_only():
    import dataclasses

    from acam.learn.train import TrainConfig

    with pytest.raises(TypeError):
        TrainConfig("dualcamnet", "x")                         # positional: refused
    cfg = TrainConfig(model="dualcamnet", data="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0


def test_distillation_loss_by_hand():
    s = torch.tensor([[2.0, 0.0, -1.0]])
    t = torch.tensor([[[1.0, 1.0, 0.0], [3.0, 1.0, 0.0]]])      # two teacher frames -> mean [2, 1, 0]
    y = torch.tensor([1])
    lam, T = 0.3, 2.0
    q = [math.exp(v) for v in (2.0, 0.0, -1.0)]
    log_q = [math.log(v / sum(q)) for v in q]
    p = [math.exp(v / T) for v in (2.0, 1.0, 0.0)]
    p = [v / sum(p) for v in p]
    want = (1 - lam) * -log_q[1] + lam * -sum(pi * lq for pi, lq in zip(p, log_q))
    got = distillation_loss(s, y, t, lam, T)
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert float(distillation_loss(s, y, t, 0.0, T)) == pytest.approx(-log_q[1], rel=1e-6)


@pytest.fixture
def tiny_data(tiny_dataset):
    return str(tiny_dataset)


def test_training_is_deterministic_and_resumes(tiny_data, tmp_path):
    from acam.learn.train import TrainConfig, fit

    cfg = TrainConfig(model="dualcamnet", data=tiny_data, train_on=[1, 2, 3], epochs=2, batch_size=16, lr=1e-3, seed=3,
                      crops_per_sequence=2, device="cpu")
    fit(cfg, str(tmp_path / "a"))
    fit(cfg, str(tmp_path / "b"))
    log_a = (tmp_path / "a" / "log.csv").read_text().splitlines()
    log_b = (tmp_path / "b" / "log.csv").read_text().splitlines()
    strip = lambda lines: [ln.rsplit(",", 1)[0] for ln in lines]      # noqa: E731 - drop the seconds column
    assert strip(log_a) == strip(log_b)
    assert sorted(os.listdir(tmp_path / "a")) == ["best.pt", "config.json", "curve.png", "log.csv"]  # no last.pt
    # one epoch, kept whole, then --epochs raised: the same as the uninterrupted run
    one = replace(cfg, epochs=1)
    fit(one, str(tmp_path / "c"), keep="all")
    assert (tmp_path / "c" / "last.pt").exists()
    fit(cfg, str(tmp_path / "c"), keep="all")
    assert strip((tmp_path / "c" / "log.csv").read_text().splitlines()) == strip(log_a)
    # a finished run that kept only best.pt is reused as it is, and says why it cannot grow
    assert fit(cfg, str(tmp_path / "a"))["epochs"] == 2
    with pytest.raises(Exception, match="kept only best.pt"):
        fit(replace(cfg, epochs=3), str(tmp_path / "a"))
    with pytest.raises(Exception, match="other settings"):
        fit(replace(cfg, lr=1e-4), str(tmp_path / "a"))
    ck = torch.load(tmp_path / "a" / "best.pt", weights_only=True)     # plain contents only
    assert ck["train_config"]["crops_per_sequence"] == 2 and ck["train_config"]["crop_seconds"] == 1.0


def test_distillation_caches_teacher_soft_labels(tiny_data, tmp_path):
    from acam.learn.train import TrainConfig, fit

    teacher = str(tmp_path / "teacher")
    fit(TrainConfig(model="dualcamnet", data=tiny_data, train_on=[1, 2, 3], epochs=1, batch_size=16, lr=1e-3,
                    seed=0, crops_per_sequence=2, device="cpu"), teacher)
    student = TrainConfig(model="hearnet", data=tiny_data, train_on=[1, 2, 3], epochs=1, batch_size=16, lr=1e-3, seed=0,
                          crops_per_sequence=1, teacher=teacher,
                          device="cpu")
    fit(student, str(tmp_path / "s1"))
    cached = [n for n in os.listdir(teacher) if n.startswith("soft_")]
    assert len(cached) == 1
    soft = torch.load(os.path.join(teacher, cached[0]), weights_only=True)
    assert soft.shape == (36, 14) and torch.isfinite(soft).all()
    fit(student, str(tmp_path / "s2"))
    assert [n for n in os.listdir(teacher) if n.startswith("soft_")] == cached


def test_teacher_runs_one_second_at_a_time_on_a_student_crop():
    from acam.learn.models import DualCamNet, block_logits

    torch.manual_seed(0)
    m = DualCamNet().eval()
    x = torch.randn(2, 60, 36, 48, 12)
    with torch.no_grad():
        got = block_logits(m, x)
        want = torch.stack([m(x[:, 12 * i:12 * (i + 1)]) for i in range(5)], 1)
        whole = m(x).view(2, 5, 12, 14)
    assert got.shape == (2, 5, 12, 14)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, whole, atol=1e-4)      # the temporal conv sees no other second


def test_authors_details_weight_decay_frame_loss_and_frozen_backbone():
    from acam.learn.models import AVNet, HearNet, ResNet50, SoundNet5
    from acam.learn.train import TrainConfig, loss_and_hits, make_optimizer

    h = HearNet()
    opt = make_optimizer(h, TrainConfig(model="hearnet", data="x", weight_decay=5e-4))
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert opt.param_groups[0]["weight_decay"] == 5e-4 and opt.param_groups[1]["weight_decay"] == 0.0
    assert decayed == {id(getattr(h, f"conv{i}").weight) for i in range(1, 6)}
    assert len(SoundNet5().decayed()) == 6
    assert float(h.conv1.bias.detach().abs().sum()) == 0 and float(h.fc1.weight.detach().abs().max()) <= 0.02   # trunc normal
    r = ResNet50(14, pretrained=True)
    assert [n for n, p in r.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    r.train()
    assert not r.layer1.training and not r.bn1.training and r.fc.training
    assert tuple(r.features(torch.randint(0, 255, (1, 1, 3, 96, 128), dtype=torch.uint8)).shape) == (1, 1, 2048)
    av = AVNet(14)
    with torch.no_grad():
        v = av.video(torch.rand(1, 2, 3, 32, 40))
    assert v.shape[-1] == 1024 and float(v.min()) < 0            # the 2048 -> 1024 projection is linear
    # per-frame loss: the clip label copied to every frame
    logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])            # one crop, two frames, two classes
    loss, hits, n = loss_and_hits(logits, torch.tensor([0]), None, TrainConfig(model="dualcamnet", data="x"), True)
    lse = math.log(math.exp(2) + 1)
    assert float(loss) == pytest.approx(((lse - 2) + lse) / 2) and (hits, n) == (1, 2)
    loss, hits, n = loss_and_hits(logits, torch.tensor([0]), None, TrainConfig(model="dualcamnet", data="x"), False)
    assert float(loss) == pytest.approx(math.log(2)) and n == 1   # mean logits [1, 1]


def test_learn_cli_reproduce_and_evaluate(tiny_data, tmp_path):
    from acam.cli import learn_group

    out = tmp_path / "paper"
    r = CliRunner().invoke(learn_group, ["reproduce", "--data", tiny_data, "-o", str(out), "--epochs", "1",
                                         "--crops", "1", "--train-sets", "all,1", "--teachers",
                                         "dualcamnet,resnet50", "--controls", "--device", "cpu"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    table = (out / "tables.md").read_text()
    for text in ("chance level 1/14 = 0.071", "windows / sequences", "95% percentile-bootstrap interval",
                 "| all scenarios | all scenarios | test | 3 / 3 |", "| anechoic (1) | office (2) | all sequences | 14 / 14 |",
                 "HearNet D", "SoundNet-5 R", "DualCamNet mono", "HearNet oracle", "scored per frame", "ResNet-50 R",
                 "trained from scratch", "| anechoic (1) | anechoic (1) | 0.8470 | 0.6965 |"):
        assert text in table, text
    row = next(ln for ln in table.splitlines() if ln.startswith("| all scenarios | all scenarios | test | 3 / 3 |"))
    assert row.count("[") >= 3                                    # every filled cell has its interval
    scored = out / "seed0" / "train_1" / "resnet50" / "eval" / "eval.json"
    before = scored.stat().st_mtime_ns
    r = CliRunner().invoke(learn_group, ["reproduce", "--data", tiny_data, "-o", str(out), "--epochs", "1",
                                         "--crops", "1", "--train-sets", "all,1", "--teachers",
                                         "dualcamnet,resnet50", "--controls", "--device", "cpu"])
    assert r.exit_code == 0 and (out / "tables.md").read_text() == table
    assert scored.stat().st_mtime_ns == before                    # a re-run neither retrains nor rescores
    run = out / "seed0" / "train_1" / "hearnet_D"
    assert not (run / "last.pt").exists() and (run / "curve.png").read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(learn_group, ["evaluate", str(run), "--test-on", "1,3", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "| outdoor (3) | all sequences | per 5 s window |" in r.output
    cm = np.loadtxt(run / "eval" / "confusion_3.csv", delimiter=",", skiprows=1, usecols=range(1, 15))
    assert cm.shape == (14, 14) and cm.sum() == 14
    assert (run / "eval" / "confusion_1.png").read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(learn_group, ["evaluate", str(tmp_path)])
    assert r.exit_code != 0 and "no best.pt" in r.output


def test_transfer_on_a_labelled_audio_folder(tiny_data, tmp_path):
    import scipy.io.wavfile

    from acam.cli import learn_group
    from acam.learn.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    for label, f0 in (("low", 400.0), ("mid", 1500.0), ("high", 4000.0)):
        (tmp_path / "audio" / label).mkdir(parents=True)
        for i in range(20):
            t = np.arange(int(1.5 * 16000)) / 16000
            x = np.sin(2 * np.pi * f0 * (1 + 0.05 * rng.standard_normal()) * t) + 0.1 * rng.standard_normal(len(t))
            scipy.io.wavfile.write(tmp_path / "audio" / label / f"{i}.wav", 16000, (x * 8000).astype(np.int16))
    run = tmp_path / "student"
    fit(TrainConfig(model="hearnet", data=tiny_data, train_on=[1, 2, 3], epochs=1, batch_size=16, lr=1e-4, seed=0,
                    crops_per_sequence=1, device="cpu"), str(run))
    r = CliRunner().invoke(learn_group, ["transfer", str(run), "--layer", "conv2", "--data",
                                         str(tmp_path / "audio"), "--seconds", "1.5"])
    assert r.exit_code == 0, r.output
    knn = float(r.output.split("k-NN")[1].split("accuracy")[1].split(",")[0])
    assert knn > 0.5          # three well-separated tone classes, chance is 1/3
    r = CliRunner().invoke(learn_group, ["transfer", str(run), "--data", str(tmp_path / "nothing")])
    assert r.exit_code != 0 and "neither a folder" in r.output
