"""Per-family training recipes: how a family's generator and discriminator losses are computed.

A recipe owns two modules that the trainer optimises (and wraps in
DistributedDataParallel): ``gen`` (the generator side: generator, encoder) and ``disc``.
Its :meth:`~base.Recipe.g_losses` / :meth:`~base.Recipe.d_losses` return dicts of named
loss terms; the trainer minimises their sum.
"""
from __future__ import annotations

from typing import Any

from .base import Batch, Recipe

RECIPES = {
    "spade": "spade:SPADERecipe",
    "groupdnet": "groupdnet:GroupDNetRecipe",
    "oasis": "oasis:OASISRecipe",
    "dpsims": "dpsims:DPSIMSRecipe",
    "progan": "progan:ProGANRecipe",
    "pix2pixhd": "pix2pixhd:Pix2PixHDRecipe",
    "msgunet": "msgunet:MSGUNetRecipe",
}


def build_recipe(name: str, model: Any, config: Any) -> Recipe:
    """The recipe ``name`` (a family name) for ``model`` under the training ``config``."""
    import importlib

    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    mod, cls = RECIPES[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), cls)(model, config)


__all__ = ["Batch", "Recipe", "RECIPES", "build_recipe"]
