"""OASIS (Schönfeld et al. 2021): SPADE generator with 3D noise, U-Net segmentation
discriminator, class-balanced N+1 loss, LabelMix."""
from sdk.train.families.oasis import network  # noqa: F401  (registers the presets)
