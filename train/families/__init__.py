"""One folder per model family: its network, discriminator, losses, training recipe and
preset registrations. A family is found by its folder: importing
:func:`load_families` imports every package here, whose ``__init__`` registers its
presets (``sdk.train.models.registry``); the trainer takes ``<family>.recipe.RECIPE``.
Adding a family touches its folder only.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

_LOADED: dict[str, ModuleType] = {}


def family_names() -> list[str]:
    """Every family folder (a package) here, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def load_families() -> dict[str, ModuleType]:
    """Import every family package (registering its presets), once."""
    for name in family_names():
        if name not in _LOADED:
            _LOADED[name] = importlib.import_module(f"{__name__}.{name}")
    return _LOADED


def family_module(family: str, part: str) -> ModuleType:
    """A part of a family (``recipe``, ``network``...): ``sdk.train.families.<family>.<part>``."""
    if family not in family_names():
        raise KeyError(f"no model family {family!r}; known: {', '.join(family_names())}")
    return importlib.import_module(f"{__name__}.{family}.{part}")
