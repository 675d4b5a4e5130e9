"""The paper's networks in PyTorch, chosen through a registry.

| name | input | what it is |
|---|---|---|
| ``dualcamnet`` | MFCC acoustic images (B, T=12, 36, 48, 12) | teacher on acoustic images: temporal conv (k7 over frames) + per-frame 2-D CNN; one logit vector per frame |
| ``resnet50`` | video (B, T, 3, H, W) | teacher on video, per frame, torchvision's parameter layout (23 536 718 parameters with 14 classes) |
| ``temporal_resnet50`` | video (B, T, 3, H, W) | ResNet-50 on 5 frames (0, 2, 5, 8, 11 of 12) with temporal convs (k3, identity-initialised, bias, ReLU) after the 3x3 conv of the second unit of each stage; logits averaged over the 5 frames |
| ``avnet`` | MFCC images + video | DualCamNet's full1 (1024) and ResNet-50's features projected 2048 -> 1024 (linear) concatenated -> 1000 -> 14, per frame |
| ``hearnet`` | spectrogram (B, 500, 257) | student: 1-D convs over time, as the authors' code |
| ``soundnet`` | waveform (B, 110 250) at 22 050 Hz | student: SoundNet-5 as the authors coded it (OurSoundNet) |

Layer details follow the paper (Pérez et al., "Audio-visual model distillation using acoustic
images", WACV 2020) and the authors' reference notes, initialisers and weight decay the authors' TF-slim code
(``docs/RESULTS.md`` lists where we differ):

- DualCamNet, HearNet: convolutions Xavier-uniform, fc1/fc2 truncated normal (std 0.01), biases 0.
- SoundNet-5: every layer truncated normal (std 0.01), biases 0; batch norm eps 1e-3 (the
  authors' decay 0.999 would leave the running statistics unsettled after our few hundred steps,
  so PyTorch's momentum 0.1 is kept).
- ResNet-50 classifier and AVNet's 2048 -> 1024 projection: He (fan-in, truncated normal).
- :meth:`decayed` names the weights the authors put L2 on (5e-4 by default, see ``TrainConfig``):
  HearNet conv1-5, SoundNet conv1-6, ResNet-50's convolutions and classifier, AVNet's projection
  and video convolutions; none of DualCamNet's, none of fc1/fc2.

``pretrained=True`` (video models, set when ``--init`` weights are given): the ImageNet backbone is
frozen (batch norm in inference mode) and only the classifier (ResNet-50, temporal ResNet-50) or the
projection and everything after it (AVNet) train; frames are resized to 256 on the shorter side and
centre-cropped to 224, as the authors' ``vgg_preprocessing``.  Without it the video models train from
scratch on the stored frames.

Frame-wise models (``FRAMEWISE``) return logits (B, T, 14), one per frame; the others (B, 14).
:func:`clip_logits` averages frames; :func:`block_logits` runs a teacher on a long crop one second
(12 frames) at a time, as the authors ran their teacher on a student's 5 s crop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .names import MODELS, STUDENTS, TEACHERS  # noqa: F401  (re-exported)

N_CLASSES = 14
BLOCK = 12          # frames per second: a teacher's input


def _xavier(m: nn.Module) -> None:
    nn.init.xavier_uniform_(m.weight)
    nn.init.zeros_(m.bias)


def _trunc(m: nn.Module, std: float = 0.01) -> None:
    nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def _he(m: nn.Module) -> None:
    """TF's variance_scaling_initializer (factor 2, fan-in, truncated normal)."""
    fan_in = m.weight[0].numel()
    _trunc(m, (1.3 * 2.0 / fan_in) ** 0.5)


@dataclass
class ModelConfig:
    """A model's architecture: its registry name, class count and constructor options.

    :meth:`full` writes every option out (the given ones over the class's defaults), so a checkpoint
    that stores ``full().as_dict()`` carries its architecture even if a default changes later; a
    checkpoint from before (``options`` empty or partial) still builds, with today's defaults."""

    name: str
    n_classes: int = N_CLASSES
    options: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def defaults(self) -> dict:
        """The model class's own option defaults (``{}`` for a name not in the registry)."""
        import inspect

        cls = REGISTRY.get(self.name)
        if cls is None:
            return {}
        params = list(inspect.signature(cls.__init__).parameters.values())[2:]    # self, n_classes
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

    def full(self) -> "ModelConfig":
        """The same architecture with every option written out."""
        return ModelConfig(self.name, self.n_classes, {**self.defaults(), **self.options})


# ----------------------------------------------------------------------------------- DualCamNet
class DualCamNet(nn.Module):
    """Acoustic-image teacher.  Input (B, T, 36, 48, 12) MFCC frames; output (B, T, n_classes).

    ``standardise``: inputs standardised per coefficient with training-set statistics (stored as
    buffers, so in the checkpoint); the authors fed raw MFCCs (the default)."""

    modality = "mfcc"
    FRAMEWISE = True

    def __init__(self, n_classes: int = N_CLASSES, height: int = 36, width: int = 48, depth: int = 12,
                 standardise: bool = False):
        super().__init__()
        self.stats_kind = "standard" if standardise else None
        self.register_buffer("in_mean", torch.zeros(depth))
        self.register_buffer("in_std", torch.ones(depth))
        self.temporal = nn.Conv3d(depth, depth, (7, 1, 1), padding=(3, 0, 0))
        self.conv1 = nn.Conv2d(depth, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        h, w = height // 4, width // 4
        self.full1 = nn.Linear(64 * h * w, 1024)   # the authors' whole-map conv, as a Linear
        self.fc1 = nn.Linear(1024, 1000)
        self.fc2 = nn.Linear(1000, n_classes)
        for m in (self.temporal, self.conv1, self.conv2, self.full1):
            _xavier(m)
        _trunc(self.fc1)
        _trunc(self.fc2)

    def set_stats(self, stats: dict) -> None:
        self.in_mean.copy_(torch.as_tensor(stats["mean"]))
        self.in_std.copy_(torch.as_tensor(stats["std"]))

    def decayed(self) -> list[str]:
        return []

    def features(self, x):
        b, t = x.shape[:2]
        x = (x - self.in_mean) / self.in_std
        x = x.permute(0, 4, 1, 2, 3)                        # (B, C, T, H, W)
        x = F.relu(self.temporal(x))
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, x.shape[1], x.shape[3], x.shape[4])
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.full1(x.flatten(1)))
        return x.view(b, t, -1)                               # (B, T, 1024)

    def forward(self, x):
        f = self.features(x)
        return self.fc2(F.relu(self.fc1(f)))


# ------------------------------------------------------------------------------------ ResNet-50
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, temporal=False):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.temporal = None
        self.n_frames = 1
        if temporal:  # kernel 3 over frames, identity at start, bias 0 and ReLU (slim's conv3d defaults)
            self.temporal = nn.Conv1d(width, width, 3, padding=1)
            with torch.no_grad():
                self.temporal.weight.zero_()
                self.temporal.weight[torch.arange(width), torch.arange(width), 1] = 1.0
                self.temporal.bias.zero_()

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.temporal is not None and self.n_frames > 1:
            bt, c, h, w = out.shape
            t = self.n_frames
            y = out.view(bt // t, t, c, h, w).permute(0, 3, 4, 2, 1).reshape(-1, c, t)
            y = F.relu(self.temporal(y)).view(bt // t, h, w, c, t).permute(0, 4, 3, 1, 2).reshape(bt, c, h, w)
            out = y
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """torchvision's ResNet-50 (same parameter names and shapes), applied per frame.

    Input (B, T, 3, H, W) uint8 or float in [0, 1] (normalised inside with ImageNet statistics);
    output (B, T, n_classes).  ``pretrained``: frozen backbone, resize 256 / centre crop 224 (see
    the module notes).
    """

    modality = "video"
    FRAMEWISE = True
    stats_kind = None

    def __init__(self, n_classes: int = N_CLASSES, temporal: bool = False, pretrained: bool = False):
        super().__init__()
        self.pretrained = pretrained
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(64, 3, 1, temporal)
        self.layer2 = self._layer(128, 4, 2, temporal)
        self.layer3 = self._layer(256, 6, 2, temporal)
        self.layer4 = self._layer(512, 3, 2, temporal)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, n_classes)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        _he(self.fc)
        if pretrained:
            for name, p in self.named_parameters():
                p.requires_grad_(name.startswith("fc."))

    def train(self, mode: bool = True):
        """A frozen backbone stays in inference mode (its batch-norm statistics are ImageNet's)."""
        super().train(mode)
        if self.pretrained and mode:
            for name, m in self.named_children():
                if name != "fc":
                    m.train(False)
        return self

    def decayed(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.dim() == 4 or n == "fc.weight"]

    def _layer(self, planes, blocks, stride, temporal):
        down = None
        if stride != 1 or self.inplanes != planes * 4:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        for i in range(1, blocks):
            layers.append(Bottleneck(self.inplanes, planes, temporal=temporal and i == 1))
        return nn.Sequential(*layers)

    def features(self, x):
        b, t = x.shape[:2]
        for m in self.modules():
            if isinstance(m, Bottleneck):
                m.n_frames = t
        x = x.reshape(b * t, *x.shape[2:])
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        if self.pretrained:
            x = resize_crop(x)
        x = (x - self.mean) / self.std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1).view(b, t, -1)      # (B, T, 2048)

    def forward(self, x):
        return self.fc(self.features(x))


class TemporalResNet50(ResNet50):
    """ResNet-50 over 5 frames (indices 0, 2, 5, 8, 11 of 12) with identity-initialised temporal
    convs; one logit vector per clip (the 5 frames' logits averaged, as the authors')."""

    FRAMES = (0, 2, 5, 8, 11)
    FRAMEWISE = False

    def __init__(self, n_classes: int = N_CLASSES, pretrained: bool = False):
        super().__init__(n_classes, temporal=True, pretrained=pretrained)

    def decayed(self) -> list[str]:
        return [n for n in super().decayed() if ".temporal." not in n]

    def forward(self, x):
        if x.shape[1] == BLOCK:
            x = x[:, list(self.FRAMES)]
        return super().forward(x).mean(1)


class AVNet(nn.Module):
    """DualCamNet's full1 features and ResNet-50's projected to 1024 fused: 2048 -> 1000 -> 14, per
    frame.  As the authors': the video branch is ResNet-50 with 1024 "classes" (its ``fc`` is the
    linear 2048 -> 1024 projection, no ReLU); the audio branch is a DualCamNet trunk from scratch."""

    modality = "av"
    FRAMEWISE = True

    def __init__(self, n_classes: int = N_CLASSES, pretrained: bool = False, standardise: bool = False):
        super().__init__()
        self.audio = DualCamNet(n_classes, standardise=standardise)
        self.video = ResNet50(1024, pretrained=pretrained)
        self.fc1 = nn.Linear(2048, 1000)
        self.fc2 = nn.Linear(1000, n_classes)
        _trunc(self.fc1)
        _trunc(self.fc2)
        self.stats_kind = self.audio.stats_kind
        self.audio.fc1 = self.audio.fc2 = None         # only its trunk is used

    def set_stats(self, stats: dict) -> None:
        self.audio.set_stats(stats)

    def decayed(self) -> list[str]:
        return ["video." + n for n in self.video.decayed()]

    def forward(self, x):
        mfcc, video = x
        a = self.audio.features(mfcc)                               # (B, T, 1024)
        v = self.video(video)                                       # (B, T, 1024), linear
        return self.fc2(F.relu(self.fc1(torch.cat([a, v], -1))))


# ------------------------------------------------------------------------------------- students
class _Student(nn.Module):
    """Shared tail of the students: a last 1x1 conv averaged over time, fc1, fc2; ``layers`` returns
    every named intermediate output (for transfer), ``forward`` the logits."""

    FRAMEWISE = False

    def _tail(self, x, last: str, out: dict) -> dict:
        x = F.relu(getattr(self, last)(x)).mean(-1)
        out[last] = x
        x = F.relu(self.fc1(x))
        out["fc1"] = x
        out["logits"] = self.fc2(x)
        return out

    def forward(self, x):
        return self.layers(x)["logits"]


class HearNet(_Student):
    """Spectrogram student.  Input (B, 500, 257) magnitude; output (B, n_classes).

    ``normalise`` (the authors' default): each frequency is min-max scaled with the training set's
    per-frequency minimum and maximum (buffers, so they travel in the checkpoint)."""

    modality = "spectrogram"

    def __init__(self, n_classes: int = N_CLASSES, n_freq: int = 257, normalise: bool = True):
        super().__init__()
        self.stats_kind = "minmax" if normalise else None
        self.register_buffer("in_min", torch.zeros(n_freq))
        self.register_buffer("in_max", torch.ones(n_freq))
        self.conv1 = nn.Conv1d(n_freq, 128, 11, padding=5)
        self.conv2 = nn.Conv1d(128, 256, 5, padding=2)
        self.conv3 = nn.Conv1d(256, 256, 3, padding=1)
        self.conv4 = nn.Conv1d(256, 1024, 4)
        self.conv5 = nn.Conv1d(1024, 1024, 1)
        self.fc1 = nn.Linear(1024, 1000)
        self.fc2 = nn.Linear(1000, n_classes)
        for m in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            _xavier(m)
        _trunc(self.fc1)
        _trunc(self.fc2)

    def set_stats(self, stats: dict) -> None:
        self.in_min.copy_(torch.as_tensor(stats["min"]))
        self.in_max.copy_(torch.as_tensor(stats["max"]))

    def decayed(self) -> list[str]:
        return [f"conv{i}.weight" for i in range(1, 6)]

    def layers(self, x):
        """Intermediate features by name (for transfer)."""
        out = {}
        x = (x - self.in_min) / (self.in_max - self.in_min).clamp_min(1e-12)
        x = x.transpose(1, 2)                                       # (B, F, T)
        x = F.max_pool1d(F.relu(self.conv1(x)), 5)
        out["conv1"] = x
        x = F.max_pool1d(F.relu(self.conv2(x)), 5)
        out["conv2"] = x
        x = F.max_pool1d(F.relu(self.conv3(x)), 5)
        out["conv3"] = x
        x = F.relu(self.conv4(x))
        out["conv4"] = x
        return self._tail(x, "conv5", out)


class SoundNet5(_Student):
    """OurSoundNet: SoundNet-5 as the authors coded it.  Input (B, 110 250) waveform at 22 050 Hz."""

    modality = "waveform"
    stats_kind = None

    def __init__(self, n_classes: int = N_CLASSES, bn_momentum: float = 0.1):
        super().__init__()

        def block(cin, cout, k, s, p, pool):
            mods = [nn.Conv1d(cin, cout, k, s, p), nn.BatchNorm1d(cout, eps=1e-3, momentum=bn_momentum),
                    nn.ReLU(inplace=True)]
            if pool:
                mods.append(nn.MaxPool1d(pool))
            return nn.Sequential(*mods)

        self.conv1 = block(1, 32, 64, 2, 32, 8)
        self.conv2 = block(32, 64, 32, 2, 16, 8)
        self.conv3 = block(64, 128, 16, 2, 8, 8)
        self.conv4 = block(128, 256, 8, 2, 4, 0)
        self.conv5 = block(256, 1024, 16, 12, 4, 0)
        self.conv6 = nn.Conv1d(1024, 1024, 1)
        self.fc1 = nn.Linear(1024, 1000)
        self.fc2 = nn.Linear(1000, n_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                _trunc(m)

    def decayed(self) -> list[str]:
        return [f"conv{i}.0.weight" for i in range(1, 6)] + ["conv6.weight"]

    def layers(self, x):
        out = {}
        x = x / x.abs().amax(-1, keepdim=True).clamp_min(1e-12) * 256.0     # as the data (idempotent)
        x = x.unsqueeze(1)
        for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
            x = getattr(self, name)(x)
            out[name] = x
        return self._tail(x, "conv6", out)


REGISTRY = {
    "dualcamnet": DualCamNet,
    "resnet50": ResNet50,
    "temporal_resnet50": TemporalResNet50,
    "avnet": AVNet,
    "hearnet": HearNet,
    "soundnet": SoundNet5,
}
assert tuple(REGISTRY) == MODELS, "learn/names.py and the registry must name the same models"


def build_model(config: ModelConfig) -> nn.Module:
    from acam.core.errors import AcamError

    if config.name not in REGISTRY:
        raise AcamError(f"model {config.name!r} is not one of {', '.join(REGISTRY)}")
    return REGISTRY[config.name](config.n_classes, **config.options)


def clip_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, T, C) frame logits -> (B, C) by averaging frames; (B, C) passes through."""
    return logits.mean(1) if logits.dim() == 3 else logits


def block_logits(model: nn.Module, x, block: int = BLOCK) -> torch.Tensor:
    """A teacher on a crop of whole seconds, one second (``block`` frames) at a time, as the authors
    ran theirs on a student's 5 s crop: (B, n_blocks, block, C) for frame-wise models, else
    (B, n_blocks, C).  A crop that is not a whole number of seconds runs in one piece."""
    first = x[0] if isinstance(x, tuple) else x
    b, t = first.shape[:2]
    n = t // block if t % block == 0 else 1
    split = lambda v: v.reshape(b * n, t // n, *v.shape[2:])        # noqa: E731
    out = model(tuple(split(v) for v in x) if isinstance(x, tuple) else split(x))
    return out.reshape(b, n, *out.shape[1:])


def resize_crop(x: torch.Tensor, short: int = 256, size: int = 224) -> torch.Tensor:
    """The authors' image preprocessing: shorter side to ``short`` (bilinear, aspect kept), centre
    crop ``size`` x ``size``.  (N, 3, H, W) -> (N, 3, size, size)."""
    h, w = x.shape[-2:]
    scale = short / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    x = F.interpolate(x, (nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]
