"""SPADE (Park et al. 2019): SPADE residual generator, VAE style encoder, multi-scale
PatchGAN discriminator (``discriminator``, shared with GroupDNet), and the small demo
presets that train on a CPU (``demo``)."""
from sdk.train.families.spade import demo, network  # noqa: F401  (registers the presets)
