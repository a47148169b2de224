"""pix2pixHD (Wang et al. 2018): LSGAN over a multi-scale D on (label, image), feature
matching (10), VGG (10, with weights); the model's own loss function."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sdk.train.families.pix2pixhd.losses import pix2pixhd_losses
from sdk.train.trainer.recipe import Batch, Recipe, vgg_or_none


class Pix2PixHDRecipe(Recipe):
    def __init__(self, model: nn.Module, config: Any) -> None:
        super().__init__(model, config)
        self.gen = self.G = model
        self.disc = self.D = model.build_discriminator()
        self.vgg = vgg_or_none(self.loss)

    def _losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fake = self.G(batch.seg)
        return pix2pixhd_losses(self.D, batch.seg, batch.image, fake, vgg_loss=self.vgg,
                                lambda_feat=self.loss.lambda_feat), fake

    def g_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        losses, fake = self._losses(batch)
        return {k: v for k, v in losses.items() if k.startswith("G_")}, fake

    def d_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.G(batch.seg)
        from sdk.train.losses import GANLoss

        gan, num_D = GANLoss("ls"), self.disc.num_D
        real = self.D(torch.cat([batch.seg, batch.image], 1))
        fake_pred = self.D(torch.cat([batch.seg, fake], 1))
        return {"D_real": gan(real, True) * num_D * 0.5, "D_fake": gan(fake_pred, False) * num_D * 0.5}

    @torch.no_grad()
    def sample(self, gen: nn.Module, batch: Batch) -> torch.Tensor:
        return gen(batch.seg)


RECIPE = Pix2PixHDRecipe
"""The recipe the trainer builds for this family (``sdk.train.trainer.recipe.build_recipe``)."""
