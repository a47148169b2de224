"""Incremental re-synthesis: after a local edit of the label map, redo only the work it reaches.

Where the work is. A SPADE-style generator (SPADE, OASIS, GroupDNet) has two kinds of layers:

* the **main path** (the residual blocks' convolutions, from the 8x8 or 4x8 start up to the
  image) reads the label map at its coarsest resolution too, so one changed pixel alters a
  coarse feature that a few 3x3 convolutions carry to every pixel: it is recomputed in full
  on every update (measured at full size: 23-25% of the generator's multiply-adds);
* the **label branches** of the modulation layers (SPADE, CG-Norm: label map (+ noise or
  codes) -> shared conv -> ReLU -> gamma and beta convs, ~69% of the multiply-adds) depend
  only on the label map near each pixel. Their outputs ``1 + gamma`` and ``beta`` are cached
  per layer for the session; after an edit the changed-pixel mask is taken to each layer's
  resolution (with the same nearest rule the network resizes the label with), grown by the
  two convolutions' halo, and the blocks it reaches (``block`` x ``block`` tiles with their
  halo) are gathered into one batch, run through the layer's own weights and scattered
  into the cache. A layer whose dirty tiles exceed ``full_above`` of its map is recomputed
  whole (cheaper than the tiles' halos then).

Exactness: the tiles run the same convolutions on the same values, zero padding where the
full map pads; only the summation order of a differently-shaped convolution may differ
(float rounding), which the tests bound at 1 level of the 8-bit image.

Preview (opt-in, ``tol > 0``): the main path's convolutions keep their output too, where
their input moved by less than ``tol`` of its range (``preview.py``); the image is then an
approximation of the full pass's, measured in ``benchmarks/edit_preview.py``.

The weights are the runner's own (nothing is copied or rewritten): during an update each
modulation module's ``forward`` is replaced on the instance, and restored afterwards. The
session runs the runner's eager module on the runner's device (CPU or CUDA; every op here
is a plain torch op on the tensors' device), in its precision (BF16 and FP16 through
``ReducedPrecision``, which the module carries).
"""
from __future__ import annotations

import contextlib
import time
import types
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sdk.errors import LabelError
from sdk.inputs import check_tol
from sdk.train.deploy.locality import MODULATIONS, locality_reason
from sdk.train.models.layers.label_map import LabelMap, nearest, read_label, resize_label

TUNING: dict[str, Any] = {
    "block": 16,
    "full_above": 0.5,
    "min_side": 64,
    "measured": ("python -m benchmarks.edit_bench --tune, spade-ade20k full size, FP32, 2 threads, 2026-12-02, "
                 "machine under load: benchmarks/results/edit-2026-12-02/tuning.json"),
}
"""How the label branches are tiled, chosen from the measurement named in ``measured``
(each branch timed alone, whole and as tiles, minimum CPU time of 3). Summed over the
layers, T tiles cost 0.46-0.55 of the whole at 5% of the tiles for B = 8, 16, 32 (the
sizes differ less than the machine's noise; 16 is the middle), and reach the whole's cost
at ~50% of the tiles for every B: ``full_above``. Layers smaller than 64 x 64 (8x8 to 32x32,
1024 channels) cost as much or more as tiles as whole at every fraction (small
convolutions run far below the large ones' rate), so they are always recomputed whole:
``min_side``."""

SPATIAL_KINDS = ("label", "instance_edge")
"""Graph inputs that are maps of the image; the others (z, codes) hold for the whole session."""


@dataclass(frozen=True)
class EditStats:
    """What one update did: ``incremental`` (else a full pass, ``reason`` says why),
    ``changed`` (fraction of the label map's pixels that differ from the last update),
    ``recomputed`` (fraction of the label branches' pixels recomputed, halos included),
    ``ms`` (wall time of the update, feeds to outputs), ``main_recomputed`` (fraction of the
    main path's multiply-adds redone: 1.0 unless the session has a preview ``tol``)."""

    incremental: bool
    reason: str
    changed: float
    recomputed: float
    ms: float
    main_recomputed: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Branch:
    """The cached label branch of one modulation layer (SPADE or CG-Norm)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.norm = getattr(module, getattr(module, "_norm_attr", "param_free_norm"))
        self.shared = module.mlp_shared
        self.pad_shared = module.mlp_shared[0].kernel_size[0] // 2
        self.pad_out = module.mlp_gamma.kernel_size[0] // 2
        self.halo = self.pad_shared + self.pad_out
        self.scale: torch.Tensor | None = None  # 1 + gamma, (N, C, h, w), contiguous
        self.shift: torch.Tensor | None = None  # beta

    def full(self, label: LabelMap | torch.Tensor) -> None:
        """Compute and cache the whole map, as the layer's own forward does."""
        actv = read_label(self.shared, label)
        self.scale = (1 + self.module.mlp_gamma(actv)).contiguous()
        self.shift = self.module.mlp_beta(actv).contiguous()

    def tiles(self, windows: torch.Tensor, inside: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``windows`` (T, C, B + 2 halo, ...) of the dense label input, zero outside the
        image -> (1 + gamma, beta) of the T central B x B blocks. ``inside`` (T, 1, ...)
        marks the window's pixels inside the image: the hidden activation is zero outside
        it, as the full map's zero padding of the gamma / beta convolutions makes it."""
        x = _valid_conv(self.shared[0], windows)
        for layer in list(self.shared)[1:]:
            x = layer(x)
        p, q = self.pad_shared, inside.shape[-1] - self.pad_shared
        x = x * inside[..., p:q, p:q].to(x.dtype)
        return 1 + _valid_conv(self.module.mlp_gamma, x), _valid_conv(self.module.mlp_beta, x)


def _valid_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` without its padding: only the outputs whose taps all lie in ``x``."""
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


def block_for(size: tuple[int, int], block: int) -> int:
    """The largest power of two <= ``block`` that divides both sides of a layer's map."""
    b = block
    while b > 1 and (size[0] % b or size[1] % b):
        b //= 2
    return b


LOOP_DEVICES = ("cpu",)
"""Devices whose tiles are gathered and scattered one slice copy per tile. On CPU that beats
one indexed copy of all tiles (measured 2026-12-02, 2 threads: 40 tiles of 128 x 16 x 16
into a 256 x 256 map, 2.5 ms against 20 ms; the indexed write walks a 6-D strided view);
on CUDA the indexed copy is one kernel where the loop would launch one per tile. Tests set
it to () to run the CUDA form on CPU."""


class Tiles:
    """The dirty tiles of one layer: ``b`` x ``b`` blocks of a map, each read with ``halo``
    pixels around it; ``idx`` (T, 3) holds image, tile row, tile column."""

    def __init__(self, b: int, halo: int, idx: torch.Tensor) -> None:
        self.b, self.halo, self.idx = b, halo, idx
        self.side = b + 2 * halo
        self.rows = idx.tolist() if idx.device.type in LOOP_DEVICES else None

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> each tile's window (T, C, side, side), zero outside the map."""
        b, side = self.b, self.side
        x = F.pad(x, (self.halo,) * 4) if self.halo else x
        if self.rows is not None:
            return torch.stack([x[n, :, y * b:y * b + side, c * b:c * b + side] for n, y, c in self.rows])
        n, ty, tx = self.idx.unbind(1)
        return x.unfold(2, side, b).unfold(3, side, b)[n, :, ty, tx]

    def scatter(self, cache: torch.Tensor, blocks: torch.Tensor) -> None:
        """Write ``blocks`` (T, C, b, b) into their places of ``cache`` (N, C, h, w)."""
        b = self.b
        blocks = blocks.to(cache.dtype).contiguous()  # channels-last tiles: one reorder here, not one per tile
        if self.rows is not None:
            for i, (n, y, c) in enumerate(self.rows):
                cache[n, :, y * b:(y + 1) * b, c * b:(c + 1) * b] = blocks[i]
            return
        n, ty, tx = self.idx.unbind(1)
        h, w = cache.shape[-2:]
        cache.view(cache.shape[0], cache.shape[1], h // b, b, w // b, b)[n, :, ty, :, tx, :] = blocks


class _Update:
    """The edit being applied in one pass: the changed mask at the input's size (None: a
    full pass), and what the layers of one resolution share (tiles, their dense windows)."""

    def __init__(self, changed: torch.Tensor | None, block: int, full_above: float, min_side: int = 1) -> None:
        self.changed = changed
        self.block = block
        self.full_above = full_above
        self.min_side = min_side
        self.memo: dict[Any, Any] = {}
        self.done = 0.0  # label-branch pixels computed (tiles with halo, or whole maps)
        self.total = 0.0  # label-branch pixels of a full pass
        self.main_done = 0.0  # main-path multiply-adds computed (preview sessions only)
        self.main_total = 0.0

    def dirty(self, size: tuple[int, int], halo: int) -> Tiles | None:
        """The tiles an edit reaches at a layer of map ``size`` whose outputs read ``halo``
        pixels around them; None when the layer is better recomputed whole."""
        key = ("dirty", size, halo)
        if key not in self.memo:
            b = block_for(size, self.block)
            mask = nearest(self.changed, size).unsqueeze(1).to(torch.float32)
            # a tile's outputs read the block grown by the halo: pool over that window
            hit = F.max_pool2d(mask, b + 2 * halo, stride=b, padding=halo)[:, 0] > 0
            idx = hit.nonzero()
            frac = idx.shape[0] / max(hit.numel(), 1)
            whole = frac > self.full_above or (min(size) < self.min_side and idx.shape[0] > 0)
            self.memo[key] = None if whole else Tiles(b, halo, idx)  # no tiles: nothing changed here
        return self.memo[key]

    def windows(self, label: LabelMap | torch.Tensor, size: tuple[int, int], tiles: Tiles,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The dense label input of each tile's window, zero outside the image, and the
        inside-the-image mask: ((T, C, side, side), (T, 1, side, side))."""
        key = ("windows", size, tiles.halo, dtype, id(label))  # the memo keeps ``label`` alive: ids stay unique
        if key in self.memo:
            return self.memo[key][1:]
        h, w = size
        inside = tiles.gather(torch.ones((int(label.shape[0]), 1, h, w), device=tiles.idx.device))
        if isinstance(label, LabelMap):
            ids = tiles.gather(label.ids.unsqueeze(1)).squeeze(1)  # padded with class 0, masked below
            after = None if label.after is None else tiles.gather(label.after.to(dtype))
            before = label.before
            if before is not None:
                before = before[tiles.idx[:, 0]] if before.shape[-2:] == (1, 1) else tiles.gather(before.to(dtype))
            by_class = None if label.before_by_class is None else label.before_by_class[tiles.idx[:, 0]]
            tile = LabelMap(ids, label.num_classes, before=before, after=after, before_by_class=by_class)
            dense = tile.dense(dtype) * inside.to(dtype)
        else:
            dense = tiles.gather(label.to(dtype))
        # channels-last: oneDNN runs a batch of small windows ~18% faster so (CPU, 2 threads)
        dense = dense.contiguous(memory_format=torch.channels_last)
        self.memo[key] = (label, dense, inside)
        return dense, inside


class IncrementalGenerator:
    """A local generator's graph module with its label branches cached between calls.

    ``run(args, changed)``: ``args`` the graph's inputs as device tensors; ``changed`` the
    (N, H, W) bool mask of input pixels that differ from the last call, or None for a full
    pass (which also refills every cache). Not thread-safe: one update at a time.
    ``tol > 0`` also caches the main path's convolutions (``preview.py``): approximate.
    """

    def __init__(self, module: nn.Module, *, block: int | None = None, full_above: float | None = None,
                 min_side: int | None = None, tol: float = 0.0) -> None:
        self.module = module
        self.block = int(block or TUNING["block"])
        self.full_above = float(TUNING["full_above"] if full_above is None else full_above)
        self.min_side = int(TUNING["min_side"] if min_side is None else min_side)
        self.tol = check_tol(tol)
        self.branches = {m: _Branch(m) for m in module.modules() if isinstance(m, MODULATIONS)}
        self.convs: dict[nn.Module, Any] = {}
        if tol > 0:
            from sdk.train.deploy.preview import CachedConv, main_path_convs  # preview builds on this module

            reach = max((b.halo for b in self.branches.values()), default=0)
            self.convs = {c: CachedConv(c, self.tol, self.block, self.full_above, reach) for c in main_path_convs(module)}
        self._update: _Update | None = None

    def run(self, args: Sequence[torch.Tensor], changed: torch.Tensor | None) -> tuple[Any, float, float]:
        """The module's outputs for ``args``, the fraction of label-branch pixels computed
        and the fraction of the main path's multiply-adds computed (1.0 without ``tol``)."""
        self._update = _Update(changed, self.block, self.full_above, self.min_side)
        try:
            with self._installed(), torch.inference_mode():
                out = self.module(*args)
            u = self._update
            return out, (u.done / u.total if u.total else 1.0), (u.main_done / u.main_total if u.main_total else 1.0)
        finally:
            self._update = None

    @contextlib.contextmanager
    def _installed(self) -> Any:
        """Each modulation module's (and preview convolution's) ``forward`` replaced on the instance, for one pass."""
        for m, branch in self.branches.items():
            m.forward = types.MethodType(self._forward_for(branch), m)
        for c, cached in self.convs.items():
            c.forward = types.MethodType(self._conv_forward_for(cached), c)
        try:
            yield
        finally:
            for m in [*self.branches, *self.convs]:
                del m.forward  # back to the class's forward

    def _conv_forward_for(self, cached: Any) -> Callable[..., torch.Tensor]:
        def forward(_c: nn.Module, x: torch.Tensor) -> torch.Tensor:
            u = self._update
            out, frac = cached(x, u.changed)
            macs = float(out.shape[0] * out.shape[-2] * out.shape[-1]) * cached.macs_per_pixel()
            u.main_total += macs
            u.main_done += frac * macs
            return out
        return forward

    def _forward_for(self, branch: _Branch) -> Callable[..., torch.Tensor]:
        def forward(_m: nn.Module, x: torch.Tensor, seg: LabelMap | torch.Tensor) -> torch.Tensor:
            normalized = branch.norm(x)
            self._modulation(branch, tuple(x.shape[-2:]), seg)
            return normalized * branch.scale + branch.shift
        return forward

    def _modulation(self, branch: _Branch, size: tuple[int, int], seg: LabelMap | torch.Tensor) -> None:
        """Bring ``branch``'s cache up to date with ``seg`` at ``size``."""
        u = self._update
        pixels = float(seg.shape[0] * size[0] * size[1])
        u.total += pixels
        label = resize_label(seg, size)
        if u.changed is None or branch.scale is None or branch.scale.shape[-2:] != size:
            branch.full(label)
            u.done += pixels
            return
        dirty = u.dirty(size, branch.halo)
        if dirty is None:
            branch.full(label)
            u.done += pixels
            return
        if not len(dirty):
            return
        dtype = branch.module.mlp_gamma.weight.dtype
        windows, inside = u.windows(label, size, dirty, dtype)
        scale, shift = branch.tiles(windows, inside)
        dirty.scatter(branch.scale, scale)
        dirty.scatter(branch.shift, shift)
        u.done += float(len(dirty) * dirty.side ** 2)


class EditSession:
    """An editing session over a torch runner (``TorchRunner.edit_session``).

    Holds the last feeds and outputs; ``update(feeds) -> (outputs, stats)`` with ``stats``
    an :class:`EditStats` as a dict (the contract the SDK's editor reads). Generators that
    are not local (:func:`~sdk.train.deploy.locality.locality_reason`) run a full pass on
    every update, with the reason in ``stats["reason"]``. ``tol > 0``: a preview session,
    whose main path is approximate (``preview.py``; ``stats["main_recomputed"]``).
    """

    def __init__(self, runner: Any, feeds: dict[str, Any], outputs: Sequence[str] | None = None, *,
                 block: int | None = None, full_above: float | None = None, min_side: int | None = None,
                 tol: float = 0.0) -> None:
        check_tol(tol)
        self.runner = runner
        self.outputs = list(outputs) if outputs is not None else list(runner.output_names)
        bundle = runner.bundle
        self.reason = locality_reason(runner.spec.module, bundle.family, bundle.task)
        self.generator = None if self.reason else IncrementalGenerator(
            runner.spec.module, block=block, full_above=full_above, min_side=min_side, tol=tol)
        self._prev: dict[str, torch.Tensor] | None = None
        self._last: dict[str, Any] | None = None
        self.last, self.stats = self.update(feeds)

    def update(self, feeds: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The outputs for ``feeds`` (same names and shapes as the first feeds) and the stats."""
        start = time.perf_counter()
        runner = self.runner
        if self.generator is None:  # not local: the runner's own (possibly compiled) pass
            out = runner.run(feeds, outputs=self.outputs)
            return out, self._stats(False, self.reason, float("nan"), 1.0, start)
        cast = runner._cast(feeds, {m.name: m.dtype for m in runner.inputs})
        args = {n: torch.as_tensor(cast[n]).to(runner.device) for n in runner.input_order}
        changed, frac, why = self._changes(args)
        if changed is not None and frac == 0.0 and self._last is not None:
            out = {k: (v.clone() if isinstance(v, torch.Tensor) else v.copy()) for k, v in self._last.items()}
            return out, self._stats(True, "", 0.0, 0.0, start, 0.0)
        with runner._cpu_fp16():
            raw, recomputed, main = self.generator.run([args[n] for n in runner.input_order], changed)
        raw = dict(zip(runner.output_names, raw if isinstance(raw, tuple) else (raw,)))
        tensors = runner.output == "tensor"
        out = {n: raw[n] if tensors else raw[n].cpu().numpy() for n in self.outputs}
        self._prev, self._last = args, out
        out = {k: (v.clone() if tensors else v.copy()) for k, v in out.items()}
        incremental = changed is not None and (recomputed < 1.0 or main < 1.0)
        if changed is not None and not incremental:
            why = f"the edit reaches more than {self.generator.full_above:.0%} of every layer's blocks"
        return out, self._stats(incremental, why, frac, recomputed, start, main)

    def _changes(self, args: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, float, str]:
        """(mask of changed pixels or None for a full pass, changed fraction, why full)."""
        prev = self._prev
        if prev is None:
            return None, 1.0, "first pass of the session"
        kinds = {s.name: s.kind for s in self.runner.spec.inputs}
        mask = None
        for name, x in args.items():
            if x.shape != prev[name].shape:
                raise LabelError(f"{name} is {tuple(x.shape)} but this session started from {tuple(prev[name].shape)}; "
                                 f"a session edits one size: start a new one")
            if kinds[name] in SPATIAL_KINDS:
                diff = x != prev[name]
                mask = diff if mask is None else mask | diff
            elif not torch.equal(x, prev[name]):
                return None, 1.0, f"{name} changed (it reaches every pixel)"
        if mask is None:
            return None, 1.0, "the graph has no label map"
        return mask, float(mask.float().mean()), ""

    @staticmethod
    def _stats(incremental: bool, reason: str, changed: float, recomputed: float, start: float,
               main: float = 1.0) -> dict[str, Any]:
        return EditStats(incremental, reason, changed, recomputed, (time.perf_counter() - start) * 1e3,
                         main).as_dict()

    def close(self) -> None:
        """Drop the caches (device memory)."""
        if self.generator is not None:
            for branch in self.generator.branches.values():
                branch.scale = branch.shift = None
            for cached in self.generator.convs.values():
                cached.reset()
        self._prev = self._last = None


__all__ = ["EditSession", "EditStats", "IncrementalGenerator", "LOOP_DEVICES", "SPATIAL_KINDS", "TUNING", "Tiles",
           "block_for"]
