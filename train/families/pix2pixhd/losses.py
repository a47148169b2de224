"""pix2pixHD objective: LSGAN over every scale, discriminator feature matching, VGG."""
from __future__ import annotations

import torch
from torch import nn

from sdk.train.families.pix2pixhd.discriminator import MultiscaleDiscriminator
from sdk.train.losses import GANLoss, feature_matching_loss


def pix2pixhd_losses(netD: MultiscaleDiscriminator, cond: torch.Tensor, real: torch.Tensor,
                     fake: torch.Tensor, *, vgg_loss: nn.Module | None = None,
                     lambda_feat: float = 10.0) -> dict[str, torch.Tensor]:
    """The paper's objective (Eq. 4), weighted as the official trainer weights it.

    ``cond`` is the generator input (label [+ edge]); D sees ``cat(cond, image)``. LSGAN
    terms are summed over the scales, the feature-matching term is
    ``lambda_feat / num_D * 4 / (n_layers + 1)`` times the L1 of each intermediate feature,
    and ``vgg_loss`` (a :class:`sdk.train.losses.VGGLoss`) is scaled by ``lambda_feat``.
    Returns ``G_GAN``, ``G_GAN_Feat``, ``G_VGG`` (with ``vgg_loss``), ``D_real`` and
    ``D_fake``; minimise ``G_*`` for G and ``(D_real + D_fake) / 2`` for D.
    """
    gan = GANLoss("ls")
    num_D = netD.num_D
    pred_real = netD(torch.cat([cond, real.detach()], 1))
    pred_fake_D = netD(torch.cat([cond, fake.detach()], 1))
    pred_fake = netD(torch.cat([cond, fake], 1))
    n_feats = len(pred_fake[0]) - 1  # = n_layers + 1 intermediate stages
    losses = {
        "G_GAN": gan(pred_fake, True, for_discriminator=False) * num_D,  # shared GANLoss averages
        "G_GAN_Feat": feature_matching_loss(pred_fake, pred_real, lambda_feat * 4 / n_feats),
        "D_real": gan(pred_real, True) * num_D,
        "D_fake": gan(pred_fake_D, False) * num_D,
    }
    if vgg_loss is not None:
        losses["G_VGG"] = vgg_loss(fake, real) * lambda_feat
    return losses
