"""Preset registry: paper configurations by name, in the manner of timm.

>>> from sdk.train.models import create_model, list_models
>>> model = create_model("spade-ade20k")

A family module registers each preset with :func:`register_model`; tests and the
CLIs iterate :func:`list_models`, so a new preset is exported, run and
parity-checked without new test code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sdk.train.models.spec import SynthesisModel


@dataclass(frozen=True)
class Preset:
    name: str
    family: str
    model_cls: type[SynthesisModel]
    config: Any  # the family's config dataclass instance
    paper_params: float | None = None  # parameter count the paper reports (generator)
    paper_source: str = ""  # where that number comes from
    test_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Overrides that shrink the preset for CI (reduced width), empty if full size is cheap."""

    def build(self, **overrides: Any) -> SynthesisModel:
        config = dataclasses.replace(self.config, **overrides) if overrides else self.config
        return self.model_cls(config)


_REGISTRY: dict[str, Preset] = {}


class UnknownModelError(LookupError):
    """A preset name that is not registered."""


def register_model(preset: Preset) -> Preset:
    if preset.name in _REGISTRY:
        raise ValueError(f"preset {preset.name!r} registered twice")
    _REGISTRY[preset.name] = preset
    return preset


def list_models(family: str | None = None) -> list[str]:
    _load_families()
    return sorted(n for n, p in _REGISTRY.items() if family is None or p.family == family)


def get_preset(name: str) -> Preset:
    _load_families()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(f"unknown model {name!r}; known presets: {known}")
    return _REGISTRY[name]


def create_model(name: str, **overrides: Any) -> SynthesisModel:
    """Build a registered preset, optionally overriding config fields."""
    return get_preset(name).build(**overrides)


def model_class_for_family(family: str) -> type[SynthesisModel]:
    _load_families()
    for p in _REGISTRY.values():
        if p.family == family:
            return p.model_cls
    raise KeyError(f"no model family {family!r}")


def _load_families() -> None:
    """Register every family's presets (``sdk.train.families``: one folder per family)."""
    from sdk.train.families import load_families

    load_families()
