"""Is a generator local in eval mode? The question the incremental runner asks first.

A generator is *local* when each output pixel depends only on the label map near it:
convolutions, eval-mode BatchNorm (a per-channel affine map), nearest/bilinear upsampling,
per-pixel activations and arithmetic. Then a small edit of the label map can be re-run on
the blocks its receptive field reaches (``incremental.py``). Anything that pools
statistics or mixes positions over the whole map makes every pixel depend on every edit:

=========  ===========================================================================
family     verdict
=========  ===========================================================================
spade      local (SPADE residual blocks, eval BatchNorm, nearest upsampling)
oasis      local (the same blocks; the 3D noise is per pixel or per class)
groupdnet  local (CG-Norm: SPADE with grouped convolutions)
dpsims     global: self- and cross-attention in the label pyramid (at H/16, H/32)
pix2pixhd  global: instance normalisation (statistics over the whole image)
progan     no label map: an unconditional generator has nothing to edit
msgunet    no label map: it translates an image (and its U-Net reaches a 1/256 bottleneck)
=========  ===========================================================================

The verdict is read from the modules themselves (the family only names them in the
message), so a preset configured with instance norm, or a new family with attention,
gets the right answer without a table to edit.
"""
from __future__ import annotations

from torch import nn

from sdk.train.models.layers.attention import _Attention
from sdk.train.models.layers.cgnorm import CGNorm
from sdk.train.models.layers.norm import SPADE

MODULATIONS = (SPADE, CGNorm)
"""Label-conditioned normalisation layers whose label branch the incremental runner caches."""

_GLOBAL_STATS = (nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)
_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NOT_A_LABEL_MAP = {
    "unconditional": "is unconditional: it takes no label map, so there is nothing to edit",
    "image2image": ("translates an image and takes no label map (its U-Net also reaches a 1/256 "
                    "bottleneck, so every output pixel sees the whole input)"),
}


def locality_reason(module: nn.Module, family: str = "", task: str = "semantic") -> str | None:
    """None when ``module`` (a generator or its deploy graph, in eval mode) is local and has
    label branches to cache; else one line saying why each update is a full pass."""
    who = family or type(module).__name__
    if task in _NOT_A_LABEL_MAP:
        return f"{who} {_NOT_A_LABEL_MAP[task]}; each update runs a full pass"
    for m in module.modules():
        what = _global_op(m)
        if what:
            return f"{who} is not local: {what}, so an edit reaches every pixel; each update runs a full pass"
    mods = [m for m in module.modules() if isinstance(m, MODULATIONS)]
    if not mods:
        return (f"{who} has no SPADE / CG-Norm layers, whose label branches the incremental runner "
                f"caches; each update runs a full pass")
    for m in mods:
        bad = _branch_problem(m)
        if bad:
            return f"{who}: {bad}; each update runs a full pass"
    return None


def _global_op(m: nn.Module) -> str:
    """What makes ``m`` mix the whole map, or ''."""
    if isinstance(m, _Attention):
        return f"attention ({type(m).__name__}) mixes every position of the map"
    if isinstance(m, _GLOBAL_STATS) and not (isinstance(m, nn.modules.instancenorm._InstanceNorm)
                                              and m.track_running_stats and not m.training):
        return f"{type(m).__name__} takes its statistics over the whole image"
    if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or not m.track_running_stats):
        return f"{type(m).__name__} in training mode takes statistics over the batch"
    if isinstance(m, _POOLS):
        return f"{type(m).__name__} pools the whole map"
    return ""


def _branch_problem(m: nn.Module) -> str:
    """Why the label branch of a modulation layer cannot be computed block by block, or ''.
    The tiles rely on stride-1, undilated, odd, zero-padded 'same' convolutions."""
    convs = [m.mlp_shared[0], m.mlp_gamma, m.mlp_beta]
    for c in convs:
        if not isinstance(c, nn.Conv2d):
            return f"its label branch holds a {type(c).__name__} (a plain Conv2d expected)"
        k = c.kernel_size
        if (c.stride != (1, 1) or c.dilation != (1, 1) or k[0] != k[1] or k[0] % 2 == 0
                or c.padding != (k[0] // 2, k[1] // 2) or c.padding_mode != "zeros"):
            return (f"its label branch convolution ({k[0]}x{k[1]}, stride {c.stride}, padding {c.padding}) "
                    f"is not a zero-padded 'same' convolution")
    if convs[1].kernel_size != convs[2].kernel_size:
        return "its gamma and beta convolutions have different kernels"
    return ""


__all__ = ["MODULATIONS", "locality_reason"]
