"""Rank-0 training logs: a metrics.jsonl file, TensorBoard scalars and image grids."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def colourise(ids: torch.Tensor, palette: str | None, num_classes: int) -> torch.Tensor:
    """(N, H, W) ids -> (N, 3, H, W) in [0, 1] with the dataset palette."""
    from sdk.palettes import get_palette

    table = torch.tensor(get_palette(palette, num_classes), dtype=torch.float32) / 255
    return table[ids.cpu().clamp(0, num_classes - 1)].permute(0, 3, 1, 2)


def image_grid(rows: list[torch.Tensor], max_items: int = 4) -> torch.Tensor:
    """Rows of (N, 3, H, W) images in [0, 1] -> one (3, rows*H, n*W) grid (resized to the first row)."""
    size = rows[0].shape[-2:]
    out = []
    for row in rows:
        row = row[:max_items].detach().float().cpu()
        if row.shape[-2:] != size:
            row = torch.nn.functional.interpolate(row, size=size, mode="nearest")
        out.append(torch.cat(list(row), dim=-1))
    return torch.cat(out, dim=-2).clamp(0, 1)


class RunLogger:
    """Writes ``metrics.jsonl`` and (optionally) TensorBoard events under the run folder."""

    def __init__(self, run: Path, tensorboard: bool) -> None:
        self.metrics = open(run / "metrics.jsonl", "a", encoding="utf-8")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run / "tb"))
            except ImportError:
                print("[train] tensorboard is not installed; logging to metrics.jsonl only")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.metrics.write(json.dumps({"step": step, **values}) + "\n")
        self.metrics.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k if "/" in k else f"loss/{k}", v, step)

    def images(self, step: int, tag: str, grid: torch.Tensor) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, grid, step)

    def close(self) -> None:
        self.metrics.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
