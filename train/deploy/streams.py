"""CUDA stream rules of the torch runner: the runner works on a stream of its own, so what
comes from the caller's stream and what goes back to it must be ordered by hand.

Two functions, both reachable on CPU (``tests/train/deploy/test_streams.py`` runs them with
the CUDA calls stubbed; on a GPU the same test runs them on real streams):

* :func:`own_cuda_graphs`: whether the runner captures CUDA graphs itself. ``torch.compile``
  modes ``"reduce-overhead"`` and ``"max-autotune"`` capture their own (CUDA graph trees);
  capturing such a module again would nest a capture inside a capture.
* :func:`on_side_stream`: run work on the runner's stream after what the caller's stream
  has queued, and hand the device tensors it made back to the caller's stream.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

from sdk.errors import BackendError

T = TypeVar("T")

INDUCTOR_CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
"""``torch.compile`` modes that capture CUDA graphs themselves."""


def own_cuda_graphs(cuda: bool, asked: bool | None, compiled: bool, compile_mode: str) -> bool:
    """Whether the runner should capture and replay CUDA graphs itself.

    Default (``asked`` None): on CUDA, unless the compiled module captures its own. Asking
    for both is refused: a capture inside a capture fails (or, worse, records the inner
    graph's replay as a node that never re-reads its inputs)."""
    inductor = compiled and compile_mode in INDUCTOR_CUDA_GRAPH_MODES
    if asked and inductor:
        raise BackendError(f"compile_mode={compile_mode!r} captures CUDA graphs itself; pass cuda_graphs=False "
                           f"or compile_mode='default' (the runner then captures them)")
    return cuda and (not inductor if asked is None else bool(asked))


def on_side_stream(cuda: Any, side: Any, work: Callable[[], T], handed_over: Callable[[T], Iterable[Any]]) -> T:
    """``work()`` on the runner's ``side`` stream, its device outputs handed to the caller.

    ``cuda`` is ``torch.cuda`` (a stand-in in CPU tests); ``handed_over(result)`` lists the
    device tensors of the result that the caller will use. The rules:

    1. ``side`` waits for the caller's current stream: input tensors the caller made (or is
       still writing) on its stream are complete before the runner's copies read them.
    2. The caller's stream waits for ``side``: whatever the caller queues next sees the
       outputs (no host sync needed for device outputs).
    3. Each handed-over tensor is marked as used on the caller's stream (``record_stream``):
       it was allocated on ``side``, and without the mark the caching allocator could give
       its memory to the runner's next call while the caller's kernels still read it.
    """
    caller = cuda.current_stream(side.device)
    side.wait_stream(caller)
    with cuda.stream(side):
        result = work()
    caller.wait_stream(side)
    for tensor in handed_over(result):
        tensor.record_stream(caller)
    return result
