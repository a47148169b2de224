"""DP-SIMS (Berrada et al. 2024): a frozen pretrained ConvNeXt backbone in the
discriminator, focal (C + 1)-class loss with one-sided smoothing, patch contrastive
loss on VGG features, optional diversity loss, EMA of G (set in the config)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sdk.train.families.dpsims import losses as L
from sdk.train.families.dpsims.discriminator import (
    DPSIMSDiscriminator,
    DPSIMSDiscriminatorConfig,
)
from sdk.train.families.oasis.recipe import OASISRecipe
from sdk.train.trainer.recipe import Batch


class DPSIMSRecipe(OASISRecipe):
    def build_disc(self, opts: dict[str, Any]) -> nn.Module:
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in opts.items() if k not in ("width", "depth")}
        if "d_width" in cfg:
            cfg["width"] = cfg.pop("d_width")
        disc = DPSIMSDiscriminator(DPSIMSDiscriminatorConfig(num_classes=self.num_classes, **cfg))
        if self.loss.backbone_weights:
            disc.backbone.load_timm(self.loss.backbone_weights)
        else:
            print("[train] loss.backbone_weights is empty: the DP-SIMS backbone stays random "
                  "(the paper uses ImageNet ConvNeXt weights)")
        self.vgg = None
        if self.loss.vgg_weights and self.loss.lambda_contrastive:
            from sdk.train.losses import VGG19Features

            self.vgg = VGG19Features.from_file(self.loss.vgg_weights)
        return disc

    def adv(self, logits: torch.Tensor, seg: torch.Tensor, for_real: bool, smoothing: float = 0.0
            ) -> torch.Tensor:
        return L.focal_loss(logits, seg[:, :self.num_classes], for_real, self.loss.focal_gamma, smoothing,
                            dontcare=True)  # channel 0, as OASIS (see OASISRecipe)

    def g_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fake = self.G(batch.seg)
        losses = {"G_adv": self.adv(self.D(fake), batch.seg, True)}
        if self.vgg is not None:
            self.vgg.to(fake.device)
            losses["G_contrastive"] = L.contrastive_loss(self.vgg, fake, batch.image) * self.loss.lambda_contrastive
        if self.loss.lambda_diversity:  # two more generations with known noises
            z1, z2 = (torch.randn(fake.shape[0], self.model.config.z_dim, device=fake.device) for _ in range(2))
            losses["G_diversity"] = L.diversity_loss(self.G(batch.seg, z1), self.G(batch.seg, z2), z1, z2
                                                     ) * self.loss.lambda_diversity
        return losses, fake

    def d_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.G(batch.seg)
        return {"D_fake": self.adv(self.D(fake), batch.seg, False),
                "D_real": self.adv(self.D(batch.image), batch.seg, True, smoothing=0.1)}


RECIPE = DPSIMSRecipe
"""The recipe the trainer builds for this family (``sdk.train.trainer.recipe.build_recipe``)."""
