"""Progressive GAN (Karras et al. 2018): WGAN-GP (lambda 10) with epsilon drift (0.001),
Adam(0, 0.99) lr 1e-3, progressive growing from 4x4 with a linear fade-in of each new
level, EMA of G (0.999, in the config). ``train.progressive`` sets the schedule:
``images_per_phase`` (fade-in and stable phases, 600k images in the paper) and
``start_res``; the real images are reduced to the current resolution and faded the same way."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.trainer.recipe import Batch, Recipe


def lod_at(images: float, max_level: int, images_per_phase: float, start_level: int = 0) -> float:
    """Level of detail after ``images`` training images: each level after the first has a
    fade-in phase then a stable phase (the first only a stable phase)."""
    phase = images / images_per_phase
    level = start_level
    if phase >= 1:
        level_progress = (phase - 1) / 2  # fade + stable per further level
        level = start_level + 1 + int(level_progress)
        frac = level_progress - int(level_progress)
        alpha = min(frac * 2, 1.0)  # first half of the pair: fade-in
        if level > max_level:
            return 0.0
        return max_level - level + (1 - alpha)
    return float(max_level - level)


class ProGANRecipe(Recipe):
    order = ("D", "G")
    find_unused_parameters = True  # the levels above the current one take no part yet

    def __init__(self, model: nn.Module, config: Any) -> None:
        super().__init__(model, config)
        self.gen = self.G = model
        self.disc = self.D = model.build_discriminator()
        prog = {"images_per_phase": 600_000, "start_res": 4, **config.train.progressive}
        self.images_per_phase = float(prog["images_per_phase"])
        self.start_level = int(math.log2(prog["start_res"])) - 2
        self.max_level = model.netG.max_level
        self.batch_size = config.train.batch_size

    def on_step(self, step: int) -> None:
        lod = lod_at(step * self.batch_size, self.max_level, self.images_per_phase, self.start_level)
        self.model.set_lod(lod, self.disc)

    def real_at_lod(self, image: torch.Tensor) -> torch.Tensor:
        g = self.model.netG
        res = 4 * 2**g.level
        x = F.interpolate(image, size=(res, res), mode="area") if image.shape[-1] != res else image
        if g.alpha < 1 and g.level > 0:  # fade: blend with the previous level's upsampled image
            low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
            x = g.alpha * x + (1 - g.alpha) * low
        return x

    def real_for_eval(self, batch: Batch) -> torch.Tensor:
        return self.real_at_lod(batch.image)  # the reals at the current level, as D sees them

    def noise(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.model.config.latent_dim, device=device)

    def g_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fake = self.G(self.noise(batch.image.shape[0], batch.image.device))
        return {"G_W": -self.D(fake).mean()}, fake

    def d_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        real = self.real_at_lod(batch.image)
        with torch.no_grad():
            fake = self.G(self.noise(real.shape[0], real.device))
        d_real, d_fake = self.D(real), self.D(fake)
        eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.D(mix).sum(), mix, create_graph=True)
        gp = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return {"D_W": d_fake.mean() - d_real.mean(), "D_GP": gp * self.loss.lambda_gp,
                "D_drift": d_real.pow(2).mean() * self.loss.lambda_drift}

    @torch.no_grad()
    def sample(self, gen: nn.Module, batch: Batch) -> torch.Tensor:
        if hasattr(gen, "netG"):
            gen.netG.set_lod(self.model.netG.lod)
        return gen(self.noise(batch.image.shape[0], batch.image.device))

    @property
    def train_size(self) -> tuple[int, int]:
        return self.model.config.height, self.model.config.width


RECIPE = ProGANRecipe
"""The recipe the trainer builds for this family (``sdk.train.trainer.recipe.build_recipe``)."""
