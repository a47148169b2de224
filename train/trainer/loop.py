"""The trainer: one loop for every family, driven by a config and a family recipe."""
from __future__ import annotations

import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from sdk.train.data.build import build_dataset
from sdk.train.models import get_preset
from sdk.train.models.config_codec import config_to_json
from sdk.train.trainer import distributed as dist_util
from sdk.train.trainer.checkpoint import (
    FORMAT,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from sdk.train.trainer.config import TrainConfig
from sdk.train.trainer.ema import EMA
from sdk.train.trainer.recipe import build_recipe, make_batch
from sdk.train.trainer.runlog import RunLogger, colourise, image_grid


class ResumeError(RuntimeError):
    """``--resume`` without a checkpoint, or against a run of another model."""


def _device(kind: str, info: dist_util.DistInfo) -> torch.device:
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(f"cuda:{info.local_rank}") if kind == "cuda" else torch.device("cpu")


class EpochData:
    """Deterministic, resumable batches: the order of epoch ``e`` is DistributedSampler's
    permutation for seed and epoch ``e``; the position is (epoch, batches taken)."""

    def __init__(self, dataset: Any, batch_size: int, seed: int, info: dist_util.DistInfo,
                 num_workers: int, balance_weights: torch.Tensor | None = None) -> None:
        from torch.utils.data import DistributedSampler

        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.seed, self.info, self.weights = seed, info, balance_weights
        self.sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                          shuffle=True, seed=seed, drop_last=True)
        if len(self.sampler) < batch_size:
            raise ValueError(f"the dataset has {len(dataset)} samples, fewer than one batch of "
                             f"{batch_size} per process")
        self.epoch, self.taken = 0, 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        from torch.utils.data import DataLoader

        while True:
            order = self.epoch_order()[self.taken * self.batch_size:]
            # A private generator: creating the loader must not draw from the global RNG,
            # or a resumed run would see other noise than an uninterrupted one.
            loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=order, drop_last=True,
                                num_workers=self.num_workers, generator=torch.Generator().manual_seed(self.epoch),
                                persistent_workers=False)
            for batch in loader:
                self.taken += 1
                yield batch
            self.epoch, self.taken = self.epoch + 1, 0

    def epoch_order(self) -> list[int]:
        """This rank's sample indices for the current epoch."""
        if self.weights is None:
            self.sampler.set_epoch(self.epoch)
            return list(self.sampler)
        # class-balanced (repeat-factor) sampling with replacement, seeded per epoch, sharded by rank
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.multinomial(self.weights, len(self.weights), True, generator=g).tolist()
        per_rank = len(order) // self.info.world_size
        return order[self.info.rank::self.info.world_size][:per_rank]

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "taken": self.taken}

    def load(self, state: dict[str, int]) -> None:
        self.epoch, self.taken = state["epoch"], state["taken"]


def _optimizer(params: list[nn.Parameter], lr: float, o: Any) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)


class Trainer:
    """Builds the model, recipe, optimisers, data and logs from a :class:`TrainConfig`.

    ``run()`` trains to ``max_steps`` (or until Ctrl-C), writing checkpoints to ``out``.
    """

    def __init__(self, config: TrainConfig, out: str | Path, *, resume: bool = False,
                 max_steps: int | None = None, progress: bool = True) -> None:
        self.cfg, self.out = config, Path(out)
        t = config.train
        self.max_steps = max_steps if max_steps is not None else t.max_steps
        self.info = dist_util.init_distributed("cuda" if _device(t.device, dist_util.DistInfo()).type == "cuda"
                                               else "cpu")
        self.device = _device(t.device, self.info)
        if t.threads:
            torch.set_num_threads(t.threads)
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.preset = get_preset(config.model.name)
        self.model = self.preset.build(**config.model.overrides)
        self.recipe = build_recipe(config.model.recipe or self.preset.family, self.model, config)
        r = self.recipe
        r.gen.to(self.device)
        r.disc.to(self.device)
        if self.info.enabled and t.sync_batchnorm and self.device.type == "cuda":
            r.gen = nn.SyncBatchNorm.convert_sync_batchnorm(r.gen)
            r.disc = nn.SyncBatchNorm.convert_sync_batchnorm(r.disc)
        self.ema = EMA(self.model, t.ema_decay) if t.ema_decay > 0 else None
        o = config.optim
        self.optG = _optimizer([p for p in r.gen.parameters() if p.requires_grad], o.lr_G, o)
        d_params = [p for p in r.disc.parameters() if p.requires_grad]
        self.optD = _optimizer(d_params, o.lr_D, o) if d_params else None
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            unused = r.find_unused_parameters
            r.G = DDP(r.gen, device_ids=ids, find_unused_parameters=unused)
            r.D = DDP(r.disc, device_ids=ids, find_unused_parameters=unused) if d_params else r.disc
        else:
            r.G, r.D = r.gen, r.disc
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
        if self.amp_dtype is not None and self.device.type != "cuda":
            print(f"[train] train.amp={t.amp} needs a GPU; training in float32 on {self.device}")
            self.amp_dtype = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        dataset = build_dataset(config.data, self.model.config, r.train_size, self.preset.family)
        weights = None
        if config.data.class_balanced:
            weights = self._balance_weights(dataset, config.data.kind)
        self.data = EpochData(dataset, t.batch_size, t.seed, self.info, config.data.num_workers, weights)
        self.step = 0
        self._stop = False
        torch.manual_seed(t.seed * 1000 + self.info.rank + 1)  # per-rank noise from here on
        if resume:
            self._resume()
        self.progress = progress

    @staticmethod
    def _balance_weights(dataset: Any, kind: str) -> torch.Tensor:
        """DP-SIMS class-balanced sampling: repeat-factor weights from per-image class presence."""
        from sdk.train.families.dpsims.losses import class_balanced_weights

        if not hasattr(dataset, "label_presence"):
            raise ValueError(f"data.class_balanced needs a labelled folder dataset, not {kind!r}")
        presence = dataset.label_presence()
        # DP-SIMS reads labels as OASIS does: the dontcare class is id 0 (sdk.conventions)
        return class_balanced_weights(presence, ignore=(0,))

    # ------------------------------------------------------------------ state
    def meta(self) -> dict[str, Any]:
        return {"format": FORMAT, "preset": self.preset.name, "family": self.preset.family,
                "overrides": self.cfg.model.overrides, "model_config": config_to_json(self.model.config),
                "train_config": self.cfg.to_dict(), "world_size": self.info.world_size,
                "label_convention": getattr(self.data.dataset, "convention", None)}

    def save(self) -> Path | None:
        path = None
        if self.info.is_main:
            state = {"step": self.step, "optG": self.optG.state_dict(),
                     "optD": self.optD.state_dict() if self.optD else None,
                     "scaler": self.scaler.state_dict(), "data": self.data.state()}
            path = save_checkpoint(self.out, self.step, model=self.model, disc=self.recipe.disc,
                                   ema=self.ema.module if self.ema else None, state=state, meta=self.meta(),
                                   keep_last=self.cfg.log.keep_last)
        dist_util.barrier(self.info)
        return path

    def _resume(self) -> None:
        ckpts = list_checkpoints(self.out)
        if not ckpts:
            raise ResumeError(f"--resume: no checkpoint (ckpt-*/) in {self.out}")
        path = ckpts[-1]
        meta = json.loads((path / "meta.json").read_text())
        if meta["preset"] != self.preset.name or meta["model_config"] != config_to_json(self.model.config):
            raise ResumeError(f"{path} is a checkpoint of {meta['preset']} with config {meta['model_config']}; "
                              f"the config builds {self.preset.name} with another configuration")
        state = load_checkpoint(path, model=self.model, disc=self.recipe.disc,
                                ema=self.ema.module if self.ema else None)
        self.optG.load_state_dict(state["optG"])
        if self.optD is not None and state["optD"] is not None:
            self.optD.load_state_dict(state["optD"])
        self.scaler.load_state_dict(state["scaler"])
        self.data.load(state["data"])
        self.step = state["step"]
        set_rng_state(state["rng"])
        if self.info.enabled:  # each rank continues its own noise stream
            torch.manual_seed(self.cfg.train.seed * 1000 + self.info.rank + 1 + self.step)
        if self.info.is_main:
            print(f"[train] resumed from {path} at step {self.step}")

    # ------------------------------------------------------------------ loop
    def _set_lr(self) -> None:
        o = self.cfg.optim
        if not o.lr_decay_start or self.step < o.lr_decay_start:
            return
        frac = max(0.0, 1 - (self.step - o.lr_decay_start) / max(self.max_steps - o.lr_decay_start, 1))
        for opt, lr in ((self.optG, o.lr_G), (self.optD, o.lr_D)):
            for g in (opt.param_groups if opt else []):
                g["lr"] = lr * frac

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _backward_step(self, losses: dict[str, torch.Tensor], opt: torch.optim.Optimizer,
                       params: Any) -> float:
        total = sum(losses.values())
        self.scaler.scale(total).backward()
        if self.cfg.optim.grad_clip:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        self.scaler.step(opt)
        return float(total.detach())

    def train_step(self, batch: Any) -> tuple[dict[str, float], torch.Tensor | None]:
        r = self.recipe
        r.on_step(self.step)
        self._set_lr()
        logged: dict[str, float] = {}
        fake = None
        for phase in r.order:
            if phase == "G":
                self.optG.zero_grad(set_to_none=True)
                with self._autocast():
                    losses, fake = r.g_losses(batch)
                logged["G_total"] = self._backward_step(losses, self.optG, r.gen.parameters())
            elif self.optD is not None:
                for _ in range(self.cfg.optim.D_steps_per_G):
                    self.optD.zero_grad(set_to_none=True)
                    with self._autocast():
                        losses = r.d_losses(batch)
                    logged["D_total"] = self._backward_step(losses, self.optD, r.disc.parameters())
            logged.update({k: float(v.detach()) for k, v in losses.items()})
        self.scaler.update()
        if self.ema is not None:
            t = self.cfg.train
            self.ema.update(self.model, 0.0 if self.step < t.ema_start else None)
        return logged, fake

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True
        if self.info.is_main:
            print("\n[train] Ctrl-C: finishing this step, writing a checkpoint and stopping "
                  "(Ctrl-C again to abort without saving)", flush=True)

    def run(self) -> Path | None:
        """Train until ``max_steps`` or Ctrl-C; returns the last checkpoint folder."""
        main = self.info.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        log = RunLogger(self.out, self.cfg.log.tensorboard) if main else None
        try:
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread: no Ctrl-C handling, request_stop() still works
            previous = None
        bar = self._progress_bar()
        last: Path | None = None
        saved_at = -1
        self.recipe.gen.train()
        self.recipe.disc.train()
        t0, seen = time.perf_counter(), 0
        try:
            data = iter(self.data)
            while self.step < self.max_steps:
                sample = next(data)
                batch = make_batch(sample, self.recipe.num_classes, self.recipe.instance_edge, self.device)
                values, fake = self.train_step(batch)
                self.step += 1
                seen += batch.image.shape[0] * self.info.world_size
                lg = self.cfg.log
                scores: dict[str, float] = {}
                if main and lg.image_every and self.step % lg.image_every == 0 and fake is not None:
                    scores = self._log_images(log, batch, fake)
                if main and (self.step % lg.every == 0 or self.step == self.max_steps or scores):
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    t0, seen = time.perf_counter(), 0
                    # one line per logged step: losses, evaluation scores (on image steps) and speed
                    log.scalars(self.step, {**values, **scores, "perf/images_per_s": rate})
                    if bar is not None:
                        bar.set_postfix({**{k: f"{v:.3g}" for k, v in values.items() if not k.endswith("total")},
                                         "img/s": f"{rate:.2f}"}, refresh=False)
                if bar is not None:
                    bar.update(1)
                stop = dist_util.any_rank(self._stop, self.info)
                if self.step % lg.checkpoint_every == 0 or self.step == self.max_steps or stop:
                    last, saved_at = self.save(), self.step
                if stop:
                    if main:
                        print(f"[train] stopped at step {self.step}; checkpoint {last}. "
                              f"Continue with --resume.", flush=True)
                    break
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if bar is not None:
                bar.close()
            if log is not None:
                log.close()
        if saved_at != self.step and self.step > 0:
            last = self.save()
        dist_util.shutdown(self.info)
        return last

    def _progress_bar(self) -> Any:
        """A tqdm bar of the steps on the main process when progress is on; else None."""
        if not (self.info.is_main and self.progress):
            return None
        from tqdm import tqdm

        return tqdm(total=self.max_steps, initial=self.step, unit="step", dynamic_ncols=True)

    def _log_images(self, log: RunLogger, batch: Any, fake: torch.Tensor) -> dict[str, float]:
        """Write the image grids; return ``log.metrics`` of the (EMA) images against the real ones."""
        rows = []
        if batch.ids is not None:
            n = self.recipe.num_classes or max(int(batch.ids.max()) + 1, 35)
            rows.append(colourise(batch.ids, getattr(self.model.config, "palette", None) or "cityscapes", n))
        rows += [(batch.image + 1) / 2, (fake.detach().float() + 1) / 2]
        log.images(self.step, "label_real_fake", image_grid(rows))
        if self.ema is not None:
            fake = self.recipe.sample(self.ema.module, batch)
            log.images(self.step, "ema_fake", image_grid([(fake.float() + 1) / 2]))
        if not self.cfg.log.metrics:
            return {}
        from sdk.train.metrics import evaluate

        fake = fake.detach().float().cpu().clamp(-1, 1)
        real = self.recipe.real_for_eval(batch).float().cpu()
        size = batch.image.shape[-2:]
        if fake.shape[-2:] != size:  # below full size (ProGAN's levels): scored at full size, where SSIM's window fits
            fake, real = (nn.functional.interpolate(t, size=size) for t in (fake, real))
        scores = evaluate(self.cfg.log.metrics, fake, real)
        return {f"eval/{k}": v for k, v in scores.items()}

    def request_stop(self) -> None:
        """Stop after the current step with a checkpoint, as Ctrl-C does (thread-safe)."""
        self._stop = True

    @property
    def stopped(self) -> bool:
        return self._stop


__all__ = ["Trainer", "ResumeError", "EpochData"]
