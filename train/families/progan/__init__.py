"""Progressive GAN (Karras et al. 2018): progressive growing with fade-in, pixel norm,
equalized learning rate, minibatch stddev; WGAN-GP training."""
from sdk.train.families.progan import network  # noqa: F401  (registers the presets)
