"""OASIS (Schönfeld et al. 2021): a U-Net segmentation discriminator with C + 1 outputs,
class-balanced cross-entropy, LabelMix regularisation (lambda 10), 3D noise, EMA of G."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.families.oasis.discriminator import OASISDiscriminator
from sdk.train.families.oasis.losses import focal_loss
from sdk.train.trainer.recipe import Batch, Recipe, model_options


class OASISGenSide(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = torch.randn(seg.shape[0], self.model.config.z_dim, device=seg.device)
        return self.model(seg, z)


def labelmix(seg: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix real and fake by a random binary map over classes; returns (mixed, mask)."""
    ids = seg.argmax(1, keepdim=True)
    mask = torch.zeros_like(ids, dtype=real.dtype)
    for i in range(seg.shape[0]):
        classes = torch.unique(ids[i])
        keep = classes[torch.randint(0, 2, (len(classes),), device=seg.device).bool()]
        mask[i] = torch.isin(ids[i], keep).to(real.dtype)
    return mask * real + (1 - mask) * fake, mask


class OASISRecipe(Recipe):
    """Channel 0 is the dontcare class, weighted 0 in the loss as in the official code: the
    label conventions OASIS reads (``sdk.conventions``) put "unlabeled" / "other" there
    (Cityscapes id 0, ADE20K value 0, COCO-Stuff 255 -> 0 after OASIS' +1 shift)."""

    def __init__(self, model: nn.Module, config: Any) -> None:
        super().__init__(model, config)
        opts = {"width": 64, "depth": 6, **model_options(config)}
        self.gen = self.G = OASISGenSide(model)
        self.disc = self.D = self.build_disc(opts)

    def build_disc(self, opts: dict[str, Any]) -> nn.Module:
        return OASISDiscriminator(self.num_classes, **opts)

    def adv(self, logits: torch.Tensor, seg: torch.Tensor, for_real: bool) -> torch.Tensor:
        return focal_loss(logits, seg[:, :self.num_classes], for_real, gamma=0.0, dontcare=True)

    def g_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fake = self.G(batch.seg)
        losses = {"G_adv": self.adv(self.D(fake), batch.seg, True)}
        if self.loss.lambda_l1:
            losses["G_L1"] = F.l1_loss(fake, batch.image) * self.loss.lambda_l1
        return losses, fake

    def d_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.G(batch.seg)
        out_fake, out_real = self.D(fake), self.D(batch.image)
        losses = {"D_fake": self.adv(out_fake, batch.seg, False), "D_real": self.adv(out_real, batch.seg, True)}
        if self.loss.lambda_labelmix:
            mixed, mask = labelmix(batch.seg, fake, batch.image)
            out_mixed = self.D(mixed)
            # D's "realness" (logsumexp of the class logits minus the fake logit) must mix like the images
            real_score = lambda o: torch.logsumexp(o[:, 1:], 1, keepdim=True) - o[:, :1]  # noqa: E731
            target = mask * real_score(out_real) + (1 - mask) * real_score(out_fake)
            losses["D_labelmix"] = F.mse_loss(real_score(out_mixed), target) * self.loss.lambda_labelmix
        return losses

    @torch.no_grad()
    def sample(self, gen: nn.Module, batch: Batch) -> torch.Tensor:
        model = gen.model if isinstance(gen, OASISGenSide) else gen
        return model(batch.seg, torch.randn(batch.image.shape[0], model.config.z_dim, device=batch.image.device))


RECIPE = OASISRecipe
"""The recipe the trainer builds for this family (``sdk.train.trainer.recipe.build_recipe``)."""
