"""GroupDNet (Zhu et al. 2020): SPADE's objective (hinge, feature matching 10, VGG 10,
KL 0.05) with per-class latent codes from the group encoder."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sdk.train.families.spade.recipe import SPADERecipe
from sdk.train.losses import kld_loss
from sdk.train.trainer.recipe import Batch


class GroupDNetGenSide(nn.Module):
    """``(seg, image) -> (fake, kld)``: encode per-class codes, reparameterise, decode."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, seg: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.model.config.num_classes
        mu, logvar = self.model.encode(image, seg[:, :c])
        codes = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.model(seg, codes), kld_loss(mu, logvar)


class GroupDNetRecipe(SPADERecipe):
    def __init__(self, model: nn.Module, config: Any) -> None:
        super().__init__(model, config)
        self.gen = self.G = GroupDNetGenSide(model)

    @torch.no_grad()
    def sample(self, gen: nn.Module, batch: Batch) -> torch.Tensor:
        model = gen.model if isinstance(gen, GroupDNetGenSide) else gen
        cfg = model.config
        codes = torch.randn(batch.image.shape[0], cfg.num_classes, cfg.code_dim, device=batch.image.device)
        return model(batch.seg, codes)


RECIPE = GroupDNetRecipe
"""The recipe the trainer builds for this family (``sdk.train.trainer.recipe.build_recipe``)."""
