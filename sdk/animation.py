"""Animated GIFs of synthesized frames (interpolations, morphs), written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image

from .atomic import atomic_path
from .errors import SDKError


def save_gif(frames: Sequence[Image.Image], path: str | Path, duration_ms: int = 100, *,
             loop: int = 0) -> Path:
    """Write ``frames`` as an animated GIF at ``path``; a reader never sees a partial file.

    Args:
        frames: PIL images of one size (RGB is quantised to the GIF's 256-colour palette).
        path: output file; its suffix should be ``.gif``.
        duration_ms: display time of each frame in milliseconds.
        loop: number of repeats; 0 loops forever.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    frames = list(frames)
    if not frames:
        raise SDKError("no frames to write; give at least one image")
    if duration_ms <= 0:
        raise SDKError(f"duration_ms must be > 0, got {duration_ms}")
    sizes = {f.size for f in frames}
    if len(sizes) != 1:
        raise SDKError(f"GIF frames must share one size; got {sorted(sizes)}")
    path = Path(path)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration_ms, loop=loop, optimize=False, disposal=1)
    return path
