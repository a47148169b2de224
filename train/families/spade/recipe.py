"""SPADE (Park et al. 2019): multi-scale PatchGAN, hinge loss, feature matching (10),
VGG (10, with weights), KL (0.05) for the VAE variant. TTUR is in the optimiser config."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.families.spade.discriminator import MultiscaleDiscriminator
from sdk.train.losses import GANLoss, feature_matching_loss, kld_loss
from sdk.train.trainer.recipe import Batch, Recipe, model_options, vgg_or_none


class SPADEGenSide(nn.Module):
    """G side as one module (for DDP): ``(seg, image) -> (fake, kld)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, seg: torch.Tensor, image: torch.Tensor | None, z: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        netE = getattr(self.model, "netE", None)
        kld = seg.new_zeros(())
        if netE is not None and z is None:
            mu, logvar = netE(image)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            kld = kld_loss(mu, logvar)
        return self.model.netG(seg, z), kld


class SPADERecipe(Recipe):
    def __init__(self, model: nn.Module, config: Any) -> None:
        super().__init__(model, config)
        opts = {"ndf": 64, "n_layers": 4, "num_D": 2, "norm": "spectralinstance", **model_options(config)}
        label_nc = self.num_classes + int(self.instance_edge)
        self.gen = self.G = SPADEGenSide(model)
        self.disc = self.D = MultiscaleDiscriminator(label_nc + 3, **opts)
        self.gan = GANLoss(self.loss.gan_mode)
        self.vgg = vgg_or_none(self.loss)

    def discriminate(self, seg: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
                     ) -> tuple[list, list]:
        # one pass over fake and real concatenated, as the official code (shared norm stats)
        pred = self.D(torch.cat([torch.cat([seg, fake], 1), torch.cat([seg, real], 1)], 0))
        n = fake.shape[0]
        return ([[f[:n] for f in scale] for scale in pred], [[f[n:] for f in scale] for scale in pred])

    def g_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fake, kld = self.G(batch.seg, batch.image)
        pred_fake, pred_real = self.discriminate(batch.seg, fake, batch.image)
        self.last_fake = fake.detach() if self.config.train.reuse_fake else None
        losses = {"G_GAN": self.gan(pred_fake, True, for_discriminator=False)}
        if self.loss.lambda_feat:
            losses["G_feat"] = feature_matching_loss(pred_fake, pred_real, self.loss.lambda_feat)
        if self.vgg is not None:
            losses["G_VGG"] = self.vgg(fake, batch.image) * self.loss.lambda_vgg
        if getattr(self.model, "netE", None) is not None and self.loss.lambda_kld:
            losses["KLD"] = kld * self.loss.lambda_kld
        if self.loss.lambda_l1:
            losses["G_L1"] = F.l1_loss(fake, batch.image) * self.loss.lambda_l1
        return losses, fake

    def d_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        fake = getattr(self, "last_fake", None)
        if fake is None:
            with torch.no_grad():
                fake, _ = self.G(batch.seg, batch.image)
        pred_fake, pred_real = self.discriminate(batch.seg, fake.detach(), batch.image)
        return {"D_fake": self.gan(pred_fake, False), "D_real": self.gan(pred_real, True)}

    @torch.no_grad()
    def sample(self, gen: nn.Module, batch: Batch) -> torch.Tensor:
        model = gen.model if isinstance(gen, SPADEGenSide) else gen
        z = None
        if getattr(model, "netE", None) is not None:
            z = torch.randn(batch.image.shape[0], model.config.z_dim, device=batch.image.device)
        return model.netG(batch.seg, z)


RECIPE = SPADERecipe
"""The recipe the trainer builds for this family (``sdk.train.trainer.recipe.build_recipe``)."""
