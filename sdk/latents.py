"""Where a synthesis call's latent inputs come from, chosen by the graph's input kinds.

A :class:`~sdk.Synthesizer` holds one latent kind (as a diffusers pipeline holds its
scheduler): :class:`NoLatent` (deterministic models), :class:`VectorLatent` (a ``latent``
input: noise or a style code, N x D) or :class:`ClassCodes` (per-class ``codes``, N x C x D:
GroupDNet's codes, OASIS' 3D noise). For one request it hands out a :class:`LatentStream` that yields
the latents of images ``0, 1, 2, ...`` chunk by chunk: a seeded stream draws them from one
generator in order, so the images of a request do not depend on how it is chunked.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import SDKError
from .inputs import check_seed
from .manifest import Kind, TensorSpec

NO_CODES = ("{name} has no per-class codes; resample/mix/morph need a GroupDNet or OASIS bundle "
            "(e.g. python -m export bundle --model oasis-ade20k)")

class LatentStream:
    """The latents of one request, taken in order: ``take(k)`` -> feeds for the next k images."""

    def __init__(self, name: str | None, draw: Callable[[int], np.ndarray] | None = None,
                 given: np.ndarray | None = None) -> None:
        self.name, self._draw, self._given, self._pos = name, draw, given, 0

    def take(self, count: int) -> dict[str, np.ndarray]:
        if self.name is None:
            return {}
        if self._given is not None:
            rows = self._given if len(self._given) == 1 else self._given[self._pos:self._pos + count]
            out = np.repeat(rows, count, axis=0) if len(rows) == 1 else rows
        else:
            out = self._draw(count)
        self._pos += count
        return {self.name: np.ascontiguousarray(out, dtype=np.float32)}


class NoLatent:
    """A model that is deterministic given its label map (or image)."""

    kind = None

    def __init__(self, model: str) -> None:
        self.model = model

    def stream(self, count: int, *, seed: Any = None, z: Any = None, style: Any = None, codes: Any = None,
               encode_style: Callable[[Any], np.ndarray] | None = None) -> LatentStream:
        check_seed(seed)
        if codes is not None:
            raise SDKError(NO_CODES.format(name=self.model))
        if z is not None or style is not None:
            given = "z=" if z is not None else "style="
            raise SDKError(f"{self.model} takes no latent: it is deterministic given its input, so {given} has "
                           f"nothing to set (use a -vae SPADE preset or a model with noise input)")
        return LatentStream(None)


class VectorLatent:
    """A ``latent`` input (N, D): noise or a style code; attrs ``distribution`` is "normal"
    or "sphere" (unit vectors), ``normalized`` says the graph normalises it itself."""

    kind = "latent"

    def __init__(self, model: str, spec: TensorSpec) -> None:
        self.model, self.spec = model, spec
        self.name = spec.name
        self.dim = int(spec.shape[1])
        self.sphere = spec.attrs.get("distribution") == "sphere"
        self.normalized = self.sphere or bool(spec.attrs.get("normalized"))

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        z = rng.standard_normal((count, self.dim), dtype=np.float32)
        if self.sphere:
            z /= np.linalg.norm(z, axis=-1, keepdims=True)
        return z

    def sample(self, seed: Any, count: int = 1) -> np.ndarray:
        """``count`` latents of ``seed``: those ``s(..., seed=seed, n=count)`` uses."""
        return self.draw(np.random.default_rng(check_seed(seed)), count)

    def check(self, z: Any, count: int) -> np.ndarray:
        try:
            arr = np.asarray(z, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise SDKError(f"z must be a float array of shape ({self.dim},) or (N, {self.dim}); {exc}") from None
        arr = arr[None] if arr.ndim == 1 else arr
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise SDKError(f"z must have shape ({self.dim},) or (N, {self.dim}); got {np.shape(z)}")
        if len(arr) not in (1, count):
            raise SDKError(f"z holds {len(arr)} latents for {count} images; give one, or one per image")
        if not np.all(np.isfinite(arr)):
            raise SDKError("z contains NaN or infinity")
        if self.normalized and np.any(~arr.any(axis=1)):
            row = int(np.flatnonzero(~arr.any(axis=1))[0])
            raise SDKError(f"z[{row}] is all zeros: {self.model} normalises z to unit length, which is undefined "
                           f"at 0; give a non-zero latent")
        return arr

    def stream(self, count: int, *, seed: Any = None, z: Any = None, style: Any = None, codes: Any = None,
               encode_style: Callable[[Any], np.ndarray] | None = None) -> LatentStream:
        seed = check_seed(seed)
        if codes is not None:
            raise SDKError(NO_CODES.format(name=self.model))
        if style is not None and z is not None:
            raise SDKError("give either style= or z=, not both")
        if style is not None:
            if encode_style is None:
                raise SDKError(f"{self.model} has no style encoder; export a -vae preset for style-guided synthesis")
            return LatentStream(self.name, given=encode_style(style)[None])
        if z is not None:
            return LatentStream(self.name, given=self.check(z, count))
        rng = np.random.default_rng(seed)
        return LatentStream(self.name, draw=lambda k: self.draw(rng, k))


class ClassCodes:
    """A per-class ``codes`` input (N, C, D): one latent code per class.

    GroupDNet draws every class's code independently. OASIS (``attrs["broadcast"]``) was
    trained with one noise vector per image at every pixel, so a seed draws one vector
    and gives it to every class (the image of a seed is the official broadcast-noise
    image; ``z=`` is taken the same way), and only a redrawn class gets a row of its own.
    """

    kind = "codes"

    def __init__(self, model: str, spec: TensorSpec) -> None:
        self.model, self.spec = model, spec
        self.name = spec.name
        self.shape = (int(spec.shape[1]), int(spec.shape[2]))
        self.broadcast = bool(spec.attrs.get("broadcast"))

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        if self.broadcast:  # the same draw as a single-vector latent: seeds keep their images
            return self.tile(rng.standard_normal((count, self.shape[1]), dtype=np.float32))
        return rng.standard_normal((count, *self.shape), dtype=np.float32)

    def tile(self, z: np.ndarray) -> np.ndarray:
        """(N, D) vectors -> (N, C, D) codes, each vector given to every class."""
        return np.ascontiguousarray(np.repeat(z[:, None], self.shape[0], axis=1))

    def sample(self, seed: Any, count: int = 1) -> np.ndarray:
        return self.draw(np.random.default_rng(check_seed(seed)), count)

    def check(self, codes: Any) -> np.ndarray:
        c, d = self.shape
        try:
            arr = np.asarray(codes, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise SDKError(f"codes must be a float array of shape ({c}, {d}) or (N, {c}, {d}); {exc}") from None
        if arr.ndim not in (2, 3) or arr.shape[-2:] != (c, d):
            raise SDKError(f"codes must have shape ({c}, {d}) or (N, {c}, {d}); got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise SDKError("codes contain NaN or infinity")
        return arr

    def stream(self, count: int, *, seed: Any = None, z: Any = None, style: Any = None, codes: Any = None,
               encode_style: Callable[[Any], np.ndarray] | None = None) -> LatentStream:
        seed = check_seed(seed)
        if self.broadcast and z is not None and style is None and codes is None:
            # one noise vector per image, as the official code takes it
            vectors = VectorLatent(self.model, TensorSpec(self.name, Kind.LATENT, (None, self.shape[1])))
            return LatentStream(self.name, given=self.tile(vectors.check(z, count)))
        if z is not None or style is not None:
            if self.broadcast:
                raise SDKError(f"{self.model} has no style encoder, and takes z= or codes=, one of them: z= "
                               f"((D,) or (N, D), every class) or codes= ((C, D) or (N, C, D), per class)")
            raise SDKError(f"{self.model} takes per-class codes, not z= or style=: give codes= "
                           f"((C, D) or (N, C, D)), or use s.mix(...) / s.encode(image, label)")
        if codes is None:
            rng = np.random.default_rng(seed)
            return LatentStream(self.name, draw=lambda k: self.draw(rng, k))
        arr = self.check(codes)
        arr = arr[None] if arr.ndim == 2 else arr
        if len(arr) not in (1, count):
            raise SDKError(f"codes hold {len(arr)} code sets for {count} images; give one, or one per image")
        return LatentStream(self.name, given=arr)


def latent_kind(model: str, inputs: list[TensorSpec]) -> NoLatent | VectorLatent | ClassCodes:
    """The latent kind of a graph, from its inputs' kinds."""
    by_kind = {s.kind: s for s in inputs}
    if Kind.CODES in by_kind:
        return ClassCodes(model, by_kind[Kind.CODES])
    if Kind.LATENT in by_kind:
        return VectorLatent(model, by_kind[Kind.LATENT])
    return NoLatent(model)
