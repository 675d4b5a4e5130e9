"""learn: models, the distillation loss against hand-computed values, the training loop, evaluation,
and the protocol on the tiny dataset."""

from __future__ import annotations

import math
import os

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
    assert not unexpected and all(".temporal." in k for k in missing) and len(missing) == 4
    x = torch.rand(2, 12, 3, 32, 40)
    with torch.no_grad():
        a = plain(x[:, [0, 2, 5, 8, 11]])
        b = temporal(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, x", [
    ("dualcamnet", lambda: torch.randn(2, 12, 36, 48, 12)),
    ("hearnet", lambda: torch.randn(2, 500, 257)),
    ("soundnet", lambda: torch.randn(2, 110250)),
    ("resnet50", lambda: torch.rand(1, 2, 3, 48, 64)),
    ("avnet", lambda: (torch.randn(1, 2, 36, 48, 12), torch.rand(1, 2, 3, 48, 64))),
])
def test_models_from_the_registry(name, x):
    m = build_model(ModelConfig(name))
    assert isinstance(m, REGISTRY[name])
    out = m(x())
    assert out.shape[-1] == 14 and torch.isfinite(out).all()


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

    cfg = TrainConfig("dualcamnet", tiny_data, [1, 2, 3], epochs=2, batch_size=16, lr=1e-3, seed=3,
                      crops_per_sequence=2, device="cpu")
    fit(cfg, str(tmp_path / "a"))
    fit(cfg, str(tmp_path / "b"))
    log_a = (tmp_path / "a" / "log.csv").read_text().splitlines()
    log_b = (tmp_path / "b" / "log.csv").read_text().splitlines()
    strip = lambda lines: [ln.rsplit(",", 1)[0] for ln in lines]      # noqa: E731 - drop the seconds column
    assert strip(log_a) == strip(log_b)
    # interrupted after one epoch, then resumed: same as the uninterrupted run
    one = TrainConfig(**{**cfg.__dict__, "epochs": 1})
    fit(one, str(tmp_path / "c"))
    ck = torch.load(tmp_path / "c" / "last.pt", weights_only=False)
    ck["train_config"]["epochs"] = 2                 # the user asks for more epochs of the same run
    torch.save(ck, tmp_path / "c" / "last.pt")
    fit(cfg, str(tmp_path / "c"))
    assert strip((tmp_path / "c" / "log.csv").read_text().splitlines()) == strip(log_a)


def test_distillation_caches_teacher_soft_labels(tiny_data, tmp_path):
    from acam.learn.train import TrainConfig, fit

    teacher = str(tmp_path / "teacher")
    fit(TrainConfig("dualcamnet", tiny_data, [1, 2, 3], 1, 16, 1e-3, 0, crops_per_sequence=2, device="cpu"), teacher)
    student = TrainConfig("hearnet", tiny_data, [1, 2, 3], 1, 16, 1e-3, 0, crops_per_sequence=1, teacher=teacher,
                          device="cpu")
    fit(student, str(tmp_path / "s1"))
    cached = [n for n in os.listdir(teacher) if n.startswith("soft_")]
    assert len(cached) == 1
    soft = torch.load(os.path.join(teacher, cached[0]))
    assert soft.shape == (34, 14) and torch.isfinite(soft).all()
    fit(student, str(tmp_path / "s2"))
    assert [n for n in os.listdir(teacher) if n.startswith("soft_")] == cached


def test_learn_cli_reproduce_and_evaluate(tiny_data, tmp_path):
    from acam.cli import learn_group

    out = tmp_path / "paper"
    r = CliRunner().invoke(learn_group, ["reproduce", "--data", tiny_data, "-o", str(out), "--epochs", "1",
                                         "--crops", "1", "--train-sets", "all", "--device", "cpu"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    table = (out / "tables.md").read_text()
    for row in ("| dualcamnet | - |", "| resnet50 | - |", "| hearnet | G |", "| hearnet | D |",
                "| hearnet | R |", "| soundnet | G |", "| soundnet | D |", "| soundnet | R |"):
        assert row in table
    run = out / "seed0" / "train_all" / "hearnet_D"
    r = CliRunner().invoke(learn_group, ["evaluate", str(run), "--test-on", "1,3", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    cm = np.loadtxt(run / "eval" / "confusion_1.csv", delimiter=",", skiprows=1, usecols=range(1, 15))
    assert cm.shape == (14, 14) and cm.sum() > 0
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
    fit(TrainConfig("hearnet", tiny_data, [1, 2, 3], 1, 16, 1e-4, 0, crops_per_sequence=1, device="cpu"), str(run))
    r = CliRunner().invoke(learn_group, ["transfer", str(run), "--layer", "conv2", "--data",
                                         str(tmp_path / "audio"), "--seconds", "1.5"])
    assert r.exit_code == 0, r.output
    knn = float(r.output.split("k-NN")[1].split("accuracy")[1].split(",")[0])
    assert knn > 0.5          # three well-separated tone classes, chance is 1/3
    r = CliRunner().invoke(learn_group, ["transfer", str(run), "--data", str(tmp_path / "nothing")])
    assert r.exit_code != 0 and "neither a folder" in r.output
