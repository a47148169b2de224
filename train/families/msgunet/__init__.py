"""MSG U-Net (2020): a multi-scale-gradient U-Net for image-to-image translation with one
discriminator per output scale."""
from sdk.train.families.msgunet import network  # noqa: F401  (registers the presets)
