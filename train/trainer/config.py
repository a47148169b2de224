"""Training configuration: typed dataclasses read from YAML and validated on load.

A config file has the sections ``model``, ``data``, ``optim``, ``loss``, ``train``
and ``log``. Unknown keys and values of the wrong type are errors that name the key
(``optim.lr_G: expected float, got str``), so a typo never silently falls back to a
default.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A training config that does not validate; the message names the key."""


@dataclass
class ModelSection:
    name: str  # registered preset (python -m export list)
    overrides: dict[str, Any] = field(default_factory=dict)  # preset config fields to change
    recipe: str = ""  # loss recipe; default: the preset's family
    D: dict[str, Any] = field(default_factory=dict)  # discriminator options (ndf, num_D, ...)


@dataclass
class DataSection:
    kind: str = "procedural"  # procedural | cityscapes | ade20k | coco-stuff | deepfashion | image-folder
    root: str = ""
    split: str = "train"
    height: int = 0  # 0: the model's resolution
    width: int = 0
    num_samples: int = 10000  # procedural: scenes per epoch
    seed_offset: int = 0  # procedural: first scene seed
    flip: bool = True  # random horizontal flip
    num_workers: int = 0
    class_balanced: bool = False  # DP-SIMS repeat-factor sampling


@dataclass
class OptimSection:
    optimizer: str = "adam"  # adam | adamw
    lr_G: float = 1e-4
    lr_D: float = 4e-4  # two time-scale update rule: D faster than G
    beta1: float = 0.0
    beta2: float = 0.9
    weight_decay: float = 0.0
    eps: float = 1e-8
    D_steps_per_G: int = 1
    lr_decay_start: int = 0  # step where linear decay to 0 starts (0: constant lr)
    grad_clip: float = 0.0


@dataclass
class LossSection:
    gan_mode: str = "hinge"
    lambda_feat: float = 10.0  # discriminator feature matching
    lambda_vgg: float = 10.0  # needs vgg_weights; skipped (with a warning) without it
    lambda_kld: float = 0.05
    lambda_l1: float = 0.0  # pixel L1 to the real image (not in the papers; small demos)
    lambda_labelmix: float = 10.0  # OASIS
    lambda_gp: float = 10.0  # ProGAN WGAN-GP
    lambda_drift: float = 0.001  # ProGAN epsilon drift
    lambda_contrastive: float = 1.0  # DP-SIMS
    lambda_diversity: float = 0.0  # DP-SIMS
    focal_gamma: float = 2.0
    vgg_weights: str = ""  # torchvision vgg19 weights file (.pth / .safetensors)
    backbone_weights: str = ""  # DP-SIMS ConvNeXt weights (timm layout)


@dataclass
class TrainSection:
    batch_size: int = 1  # per process
    max_steps: int = 1000
    seed: int = 0
    ema_decay: float = 0.0  # >0: keep an exponential moving average of G
    ema_start: int = 0
    amp: str = "none"  # none | bf16 | fp16 (GPU only)
    device: str = "auto"  # auto | cpu | cuda
    sync_batchnorm: bool = True  # under DDP, as the papers' multi-GPU training
    progressive: dict[str, Any] = field(default_factory=dict)  # ProGAN: images_per_phase, batch_by_res
    threads: int = 0  # torch.set_num_threads (0: leave)
    reuse_fake: bool = False  # D step reuses the G step's images instead of a new forward (cheaper)


@dataclass
class LogSection:
    every: int = 10  # tqdm postfix / TensorBoard scalars
    image_every: int = 200  # TensorBoard image grids, and the evaluation of ``metrics``
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim"])  # sdk.train.metrics.PAIRWISE
    checkpoint_every: int = 500
    keep_last: int = 3
    tensorboard: bool = True


@dataclass
class TrainConfig:
    model: ModelSection
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    log: LogSection = field(default_factory=LogSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            try:
                return _check_type(value, arm, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {tp}, got {type(value).__name__} ({value!r})")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected float, got {type(value).__name__} ({value!r})")
        return float(value)
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}: expected int, got {type(value).__name__} ({value!r})")
    if not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} ({value!r})")
    return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{unknown[0]} (known in {prefix or 'the top level'}: "
                          f"{', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _check_type(value, hints[name], f"{prefix}.{name}" if prefix else name)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing key {prefix + '.' if prefix else ''}{missing[0]}")
    return cls(**kwargs)


WEIGHT_FILES = {
    "vgg_weights": ("lambda_vgg", "torchvision's VGG19 ImageNet state_dict (the file torchvision's "
                    "vgg19(weights='IMAGENET1K_V1') downloads, vgg19-dcbb9e9d.pth) saved to that path",
                    "set loss.lambda_vgg: 0 to train without the VGG perceptual loss"),
    "backbone_weights": (None, "DP-SIMS's frozen ConvNeXt discriminator backbone as a timm state_dict "
                         "(.pth or .safetensors, e.g. timm's convnext_large ImageNet weights) saved to that path",
                         "set loss.backbone_weights: '' to train with a random frozen backbone (not the paper's)"),
}
"""Local weight files a config may name: (the loss weight that makes it needed, what the
file is and where it comes from, how to train without it). Nothing is downloaded."""


def check_weight_files(cfg: TrainConfig) -> None:
    """Every weight file the config needs exists; the error says what it is and how to do without."""
    for key, (weight, what, without) in WEIGHT_FILES.items():
        path = getattr(cfg.loss, key)
        needed = bool(path) and (weight is None or getattr(cfg.loss, weight))
        if needed and not Path(path).is_file():
            raise ConfigError(f"loss.{key}: {path} does not exist; it is {what}. Or {without}")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Validate a parsed config mapping; raises :class:`ConfigError` naming the bad key."""
    cfg = _build(TrainConfig, data, "")
    if cfg.train.amp not in ("none", "bf16", "fp16"):
        raise ConfigError(f"train.amp: expected none, bf16 or fp16, got {cfg.train.amp!r}")
    from sdk.train.metrics import PAIRWISE

    bad = [m for m in cfg.log.metrics if m not in PAIRWISE]
    if bad:
        raise ConfigError(f"log.metrics: {bad[0]!r} is not a metric of two image sets; use {', '.join(PAIRWISE)}")
    if cfg.optim.optimizer not in ("adam", "adamw"):
        raise ConfigError(f"optim.optimizer: expected adam or adamw, got {cfg.optim.optimizer!r}")
    return cfg


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML training config."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return config_from_dict(data or {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
