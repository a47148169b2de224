"""Demo presets: small networks that train on a CPU and deploy at the sample labels' size.

``spade-demo-street`` is a narrow label-only SPADE generator that runs at 1/``scale``
of its deploy resolution: the deploy graph takes a 256x512 label map (the size of
``samples/street_*_label.png``), picks every ``scale``-th pixel (nearest), synthesises
at 64x128 and upsamples the image bilinearly. Training uses the generator at the
reduced size directly (``SPADEDemoModel.train_size``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.families.spade.network import SPADEConfig, SPADEGenerator, SPADEModel
from sdk.train.models.layers.label_map import label_input, resize_label
from sdk.train.models.registry import Preset, register_model
from sdk.train.models.spec import GraphSpec, Kind, TensorSpec, label_spec


@dataclass(frozen=True)
class SPADEDemoConfig(SPADEConfig):
    scale: int = 4  # the generator runs at (height / scale, width / scale)


class _ScaledGraph(nn.Module):
    def __init__(self, netG: SPADEGenerator, size: tuple[int, int], scale: int) -> None:
        super().__init__()
        self.netG, self.size, self.scale = netG, size, scale

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        seg = label_input(label, self.netG.cfg.num_classes)
        h, w = self.size
        small = resize_label(seg, (h // self.scale, w // self.scale))  # every scale-th pixel, as the training data
        out = self.netG(small)
        return F.interpolate(out, size=self.size, mode="bilinear", align_corners=False)


class SPADEDemoModel(SPADEModel):
    """A label-only SPADE generator that synthesises at a reduced size (see module docstring)."""

    def __init__(self, config: SPADEDemoConfig) -> None:
        if config.use_vae or config.instance_edge:
            raise ValueError("the demo SPADE model is label-only (use_vae=False, instance_edge=False)")
        if config.height % config.scale or config.width % config.scale:
            raise ValueError(f"height and width must be divisible by scale={config.scale}")
        small = dataclasses.replace(config, height=config.height // config.scale,
                                    width=config.width // config.scale)
        super().__init__(small)
        self.config = config

    @property
    def train_size(self) -> tuple[int, int]:
        """(H, W) the generator trains at."""
        return self.config.height // self.config.scale, self.config.width // self.config.scale

    def graphs(self) -> dict[str, GraphSpec]:
        cfg = self.config
        h, w = cfg.height, cfg.width
        return {"model": GraphSpec(_ScaledGraph(self.netG, (h, w), cfg.scale),
                                   (label_spec(cfg.num_classes, h, w),),
                                   (TensorSpec("image", Kind.IMAGE, (None, 3, h, w)),))}


register_model(Preset(
    name="spade-demo-street", family="spade", model_cls=SPADEDemoModel,
    config=SPADEDemoConfig(num_classes=35, height=256, width=512, scale=8, ngf=8, spade_hidden=16,
                           use_vae=False, instance_edge=False, num_upsampling_layers="normal",
                           norm_G="spectralspadebatch3x3", palette="cityscapes"),
    test_overrides={"ngf": 4, "spade_hidden": 8}))
