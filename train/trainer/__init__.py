"""One trainer for every family: ``python -m train --config CONFIG.yaml``."""
from sdk.train.trainer.config import (
    ConfigError,
    TrainConfig,
    config_from_dict,
    load_config,
)

__all__ = ["ConfigError", "TrainConfig", "config_from_dict", "load_config"]
