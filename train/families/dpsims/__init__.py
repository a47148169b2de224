"""DP-SIMS (Berrada et al. 2024): label-map encoding pyramid with cross- and
self-attention feeding an OASIS-style generator; discriminator on a frozen ConvNeXt;
focal, contrastive and diversity losses; class-balanced sampling."""
from sdk.train.families.dpsims import network  # noqa: F401  (registers the presets)
