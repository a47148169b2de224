"""MSG U-Net: one conditional PatchGAN per output scale, the generator's images at every
scale against the real image at that scale (area-downsampled), plus L1 per scale
(pix2pix: non-saturating GAN loss, lambda_L1 100). The source is the colourised label."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.losses import GANLoss
from sdk.train.trainer.recipe import Batch, Recipe


class MSGUNetRecipe(Recipe):
    def __init__(self, model: nn.Module, config: Any) -> None:
        super().__init__(model, config)
        self.gen = self.G = model
        self.disc = self.D = model.build_discriminator()
        self.gan = GANLoss(self.loss.gan_mode)

    @staticmethod
    def source(batch: Batch) -> torch.Tensor:
        """Image-to-image input: the label map colourised to [-1, 1] (the real image when unlabelled)."""
        if batch.ids is None:
            return batch.image
        from sdk.train.trainer.runlog import colourise

        n = int(batch.ids.max()) + 1
        return colourise(batch.ids, "cityscapes" if n <= 35 else None, max(n, 35)).to(batch.image.device) * 2 - 1

    @staticmethod
    def pyramid(real: torch.Tensor, fakes: list[torch.Tensor]) -> list[torch.Tensor]:
        return [real if f.shape[-2:] == real.shape[-2:] else F.interpolate(real, size=f.shape[-2:], mode="area")
                for f in fakes]

    def g_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        src = self.source(batch)
        fakes = self.G(src)
        reals = self.pyramid(batch.image, fakes)
        losses = {"G_GAN": self.gan(self.D(src, fakes), True, for_discriminator=False)}
        if self.loss.lambda_l1:
            losses["G_L1"] = sum(F.l1_loss(f, r) for f, r in zip(fakes, reals)) / len(fakes) * self.loss.lambda_l1
        return losses, fakes[0]

    def d_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        src = self.source(batch)
        with torch.no_grad():
            fakes = [f.detach() for f in self.G(src)]
        reals = self.pyramid(batch.image, fakes)
        return {"D_real": self.gan(self.D(src, reals), True) * 0.5,
                "D_fake": self.gan(self.D(src, fakes), False) * 0.5}

    @torch.no_grad()
    def sample(self, gen: nn.Module, batch: Batch) -> torch.Tensor:
        return gen(self.source(batch))[0]


RECIPE = MSGUNetRecipe
"""The recipe the trainer builds for this family (``sdk.train.trainer.recipe.build_recipe``)."""
