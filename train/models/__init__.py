"""Networks of the five papers, built from shared layers and registered by preset name."""
from sdk.train.models.registry import (
    Preset,
    create_model,
    get_preset,
    list_models,
    register_model,
)
from sdk.train.models.spec import GraphSpec, SynthesisModel, TensorSpec

__all__ = [
    "GraphSpec", "Preset", "SynthesisModel", "TensorSpec",
    "create_model", "get_preset", "list_models", "register_model",
]
