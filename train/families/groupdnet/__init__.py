"""GroupDNet / SMIS (Zhu et al. 2020): group-conv encoder, CG-Norm / CG-Block decoder;
trained with SPADE's discriminator and losses."""
from sdk.train.families.groupdnet import network  # noqa: F401  (registers the presets)
