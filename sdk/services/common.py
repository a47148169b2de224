"""What the doors share: one Ray start-up, one thread-count rule, one PNG encoder, one way to
keep a bad item from failing the items batched with it, and the bundle's identity."""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from PIL import Image

from sdk import Bundle, SDKError, Synthesizer
from sdk.backends import resolve_backend, runner_options

T = TypeVar("T")
R = TypeVar("R")


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``address``, or start a local Ray (no dashboard, quiet), unless
    this process has one already; returns whether it started one (then it shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    return True


def threads_for(cpus: float | None) -> int | None:
    """The one thread-count rule: a door process given ``cpus`` CPUs (a Ray worker or replica)
    runs one inference thread per whole CPU, at least one; None (the app): the backend's default."""
    return None if cpus is None else max(1, int(cpus))


def open_synthesizer(bundle: str | Path, *, backend: str = "auto", threads: int | None = None,
                     label_format: str = "dataset") -> Synthesizer:
    """A door's Synthesizer: the bundle verified, the backend ``auto`` picks on this machine,
    ``threads`` for a backend that takes the option (onnxruntime, OpenVINO, torch), and the
    label format the door was started with."""
    b = Bundle(bundle, verify=True)
    chosen = resolve_backend(b, backend)
    options = {"threads": threads} if threads is not None and "threads" in runner_options(chosen) else {}
    return Synthesizer(b, chosen, label_format=label_format, **options)


def png_bytes(image: Image.Image, level: int = 1) -> bytes:
    """One image as PNG bytes, zlib ``level`` 1 by default: ~5x faster to write than PIL's 6
    and ~25% larger, which is most of a request's host time on a small model."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def isolated(run: Callable[[list[T]], Sequence[R]], items: Sequence[T]) -> list[R | Exception]:
    """``run(items)`` in one call; if that call raises, each item alone, so an item the
    synthesis refuses fails only itself: the result list holds its exception in its place."""
    items = list(items)
    try:
        return list(run(items))
    except Exception as exc:
        if len(items) == 1:
            return [exc]
    out: list[R | Exception] = []
    for item in items:
        try:
            out.append(run([item])[0])
        except Exception as exc:
            out.append(exc)
    return out


def error_line(exc: BaseException) -> str:
    """One line for a record or a response: the SDK's own message, else the exception's type
    and message (a failure that is ours, not the input's)."""
    if isinstance(exc, SDKError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"internal error ({type(exc).__name__}: {text[:300]})"


def bundle_sha(bundle_path: str | Path) -> str:
    """The bundle's identity in records: the manifest's sha256 of the weights (else of the
    model graph), which fixes the images whatever backend runs them."""
    b = Bundle(bundle_path, verify=False)
    files = b.manifest.files
    for rel in (b.manifest.weights.get("file"), b.graph("model").file):
        if rel and rel in files:
            return files[rel]["sha256"]
    raise SDKError(f"{b.path} lists neither weights nor a model graph with a sha256; re-export it")


def edges_line(bundle: Bundle, given: str) -> str:
    """What a door says once about instance edges of a bundle trained with them (``given``:
    how this door takes an instance map), or '' for a bundle without."""
    if not bundle.label.get("instance_edge"):
        return ""
    return (f"{bundle.name} was trained with instance edges: give an instance map ({given}); without one the "
            f"borders of each label's regions stand in for them")


__all__ = ["bundle_sha", "edges_line", "error_line", "isolated", "open_synthesizer", "png_bytes", "start_ray",
           "threads_for"]
