"""Make a network export-clean: fold spectral norm, turn SyncBatchNorm into BatchNorm.

Spectral norm's power iteration and SyncBatchNorm's collectives inside a traced graph
are what broke exports of the official repositories (SPADE #154, pix2pixHD #210);
both have a plain eval-mode equivalent, computed here once.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.spectral_norm import (
    SpectralNorm,
    SpectralNormLoadStateDictPreHook,
    SpectralNormStateDictHook,
)


def fold_spectral_norm(model: nn.Module) -> int:
    """Replace every spectral-norm hook by its current normalised weight. Returns the count.

    ``remove_spectral_norm`` computes ``W / sigma`` with the stored ``u``/``v`` and no
    power iteration: exactly what the module computes in eval mode.
    """
    count = 0
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, SpectralNorm):
                nn.utils.remove_spectral_norm(module, hook.name)
                count += 1
        # remove_spectral_norm leaves its state-dict hooks, whose load hook then asks a
        # folded state for weight_orig: drop them with the norm
        for hooks in (module._load_state_dict_pre_hooks, module._state_dict_hooks):
            for key, hook in list(hooks.items()):
                target = getattr(hook, "hook", hook)
                if isinstance(target, (SpectralNormLoadStateDictPreHook, SpectralNormStateDictHook)):
                    del hooks[key]
    return count


def sync_bn_to_bn(model: nn.Module) -> nn.Module:
    """Recursively replace ``nn.SyncBatchNorm`` with ``nn.BatchNorm2d`` (same state)."""
    if isinstance(model, nn.SyncBatchNorm):
        bn = nn.BatchNorm2d(model.num_features, model.eps, model.momentum, model.affine,
                            model.track_running_stats)
        bn.load_state_dict(model.state_dict())
        bn.train(model.training)
        return bn
    for name, child in model.named_children():
        setattr(model, name, sync_bn_to_bn(child))
    return model


def export_ready(model: nn.Module) -> nn.Module:
    """A folded, eval-mode deep copy of ``model``; the original is left untouched."""
    model = copy.deepcopy(model).eval()
    fold_spectral_norm(model)
    model = sync_bn_to_bn(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def calibrate_norm_stats(model: nn.Module, graph_examples: "Callable[[int], tuple]", steps: int = 4) -> None:
    """Set BatchNorm running statistics from a few forward passes on seeded inputs.

    A randomly initialised network whose BatchNorms still hold mean 0 / var 1 lets
    activations grow layer after layer until the output saturates; parity figures on
    such a network measure nothing. Only for random-weight bundles: trained
    checkpoints keep their learned statistics.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration passes
    was_training = model.training
    model.train()
    for step in range(steps):
        model(*graph_examples(step))
    model.train(was_training)
    for m, momentum in saved.items():
        m.momentum = momentum
