"""pix2pixHD (Wang et al. 2018): global generator and local enhancer, multi-scale
discriminator, LSGAN + feature matching + VGG; the baseline of MSG U-Net."""
from sdk.train.families.pix2pixhd import network  # noqa: F401  (registers the presets)
