"""The recipe interface and the batch the trainer hands to it.

A recipe (one per family: ``sdk.train.families.<family>.recipe``, class ``RECIPE``) owns
two modules that the trainer optimises (and wraps in DistributedDataParallel): ``gen``
(the generator side: generator, encoder) and ``disc``. Its :meth:`Recipe.g_losses` /
:meth:`Recipe.d_losses` return dicts of named loss terms; the trainer minimises their sum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdk.labels import instance_edges


@dataclass
class Batch:
    image: torch.Tensor  # (N, 3, H, W) in [-1, 1]
    ids: torch.Tensor | None = None  # (N, H, W) class ids
    seg: torch.Tensor | None = None  # one-hot label (+ instance edge channel where the model takes one)


def make_batch(sample: dict[str, torch.Tensor], num_classes: int | None, instance_edge: bool,
               device: torch.device) -> Batch:
    image = sample["image"].to(device, non_blocking=True)
    if "label" not in sample:
        return Batch(image)
    ids = sample["label"].to(device, non_blocking=True)
    if num_classes is None:  # image-to-image models take the label as a colour image
        return Batch(image, ids)
    seg = F.one_hot(ids, num_classes).permute(0, 3, 1, 2).float()
    if instance_edge:
        # without instance maps (procedural scenes) class boundaries stand in, as in the SDK
        inst = sample.get("instance", sample["label"])
        edges = torch.from_numpy(instance_edges(inst.cpu().numpy())).to(device, non_blocking=True)
        seg = torch.cat([seg, edges.unsqueeze(1).float()], 1)
    return Batch(image, ids, seg)


class Recipe:
    """Base recipe. Subclasses set ``self.gen`` / ``self.disc`` and implement the losses.

    ``self.G`` / ``self.D`` are what the losses call: ``gen`` / ``disc`` themselves, or
    their DistributedDataParallel wrappers (set by the trainer).
    """

    order: tuple[str, ...] = ("G", "D")  # update order within a step
    find_unused_parameters: bool = False  # DDP: True where parts of a net sit idle (ProGAN's levels)

    def __init__(self, model: nn.Module, config: Any) -> None:
        self.model, self.config, self.loss = model, config, config.loss
        self.gen: nn.Module = model
        self.disc: nn.Module = nn.Identity()
        self.G: nn.Module = model
        self.D: nn.Module = self.disc

    @property
    def train_size(self) -> tuple[int, int]:
        """(H, W) of the training images; a model may train below its deploy size."""
        size = getattr(self.model, "train_size", None)
        return tuple(size) if size else (self.model.config.height, self.model.config.width)

    @property
    def num_classes(self) -> int | None:
        return getattr(self.model.config, "num_classes", None)

    @property
    def instance_edge(self) -> bool:
        return bool(getattr(self.model.config, "instance_edge", False))

    def on_step(self, step: int) -> None:
        """Hook before each step (ProGAN's level of detail)."""

    def g_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Generator loss terms and the generated images (for logging)."""
        raise NotImplementedError

    def d_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, gen: nn.Module, batch: Batch) -> torch.Tensor:
        """Images from ``gen`` (the raw or the EMA generator side) for the image grids."""
        return gen(batch.seg, self.noise(batch.image.shape[0], batch.image.device))

    def noise(self, n: int, device: torch.device) -> torch.Tensor | None:
        return None

    def real_for_eval(self, batch: Batch) -> torch.Tensor:
        """The real images the generator's images of ``batch`` are scored against (``log.metrics``)."""
        return batch.image

    def batch_size_for(self, step: int, default: int) -> int:
        return default


def vgg_or_none(loss: Any) -> nn.Module | None:
    """A frozen VGG19 perceptual loss if ``loss.vgg_weights`` names a file, else None."""
    if not loss.vgg_weights or not loss.lambda_vgg:
        return None
    from sdk.train.losses import VGG19Features, VGGLoss

    return VGGLoss(VGG19Features.from_file(loss.vgg_weights))


def model_options(config: Any) -> dict[str, Any]:
    """The ``model.D`` options of the config (discriminator size and layout)."""
    return dict(config.model.D)


def build_recipe(family: str, model: Any, config: Any) -> Recipe:
    """The training recipe of ``family`` (its folder's ``recipe.RECIPE``) for ``model``."""
    from sdk.train.families import family_module

    try:
        recipe = family_module(family, "recipe").RECIPE
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None
    return recipe(model, config)
