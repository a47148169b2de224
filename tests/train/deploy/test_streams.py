"""The torch runner's CUDA stream rules (``sdk.train.deploy.streams``).

On CPU the CUDA calls are stubbed by a recorder (the order of waits, stream switches and
``record_stream`` marks is what the rules are); on a GPU the last test runs the runner on
real streams with inputs still being written on the caller's stream.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from sdk import Bundle
from sdk.errors import BackendError
from sdk.train.deploy.runner import TorchRunner
from sdk.train.deploy.streams import on_side_stream, own_cuda_graphs


class _Stream:
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log, self.device = name, log, "cuda:0"

    def wait_stream(self, other: "_Stream") -> None:
        self.log.append(("wait", self.name, other.name))


class _Cuda:
    """Stands in for ``torch.cuda``: a current stream, a stream context, a call log."""

    def __init__(self) -> None:
        self.log: list = []
        self.current = _Stream("caller", self.log)

    def current_stream(self, device: str | None = None) -> _Stream:
        return self.current

    @contextlib.contextmanager
    def stream(self, s: _Stream):
        before, self.current = self.current, s
        self.log.append(("enter", s.name))
        try:
            yield
        finally:
            self.current = before
            self.log.append(("exit", s.name))


class _Tensor:
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def record_stream(self, s: _Stream) -> None:
        self.log.append(("record", self.name, s.name))


def test_side_stream_waits_for_the_caller_and_hands_outputs_back():
    cuda = _Cuda()
    side = _Stream("side", cuda.log)

    def work():
        cuda.log.append(("work on", cuda.current.name))
        return {"image_u8": _Tensor("image_u8", cuda.log), "image": _Tensor("image", cuda.log)}

    out = on_side_stream(cuda, side, work, lambda r: r.values())
    assert set(out) == {"image_u8", "image"}
    assert cuda.log == [("wait", "side", "caller"),  # inputs made on the caller's stream are complete
                        ("enter", "side"), ("work on", "side"), ("exit", "side"),
                        ("wait", "caller", "side"),  # the caller's next work sees the outputs
                        ("record", "image_u8", "caller"), ("record", "image", "caller")]  # memory not reused early
    assert cuda.current.name == "caller"


def test_host_outputs_are_not_marked():
    cuda = _Cuda()
    on_side_stream(cuda, _Stream("side", cuda.log), lambda: {}, lambda r: r.values())
    assert not [e for e in cuda.log if e[0] == "record"]


@pytest.mark.parametrize("cuda, asked, compiled, mode, want", [
    (True, None, True, "default", True),            # ours: captured per batch size
    (True, None, True, "reduce-overhead", False),   # inductor captures: ours off, no nesting
    (True, None, True, "max-autotune", False),
    (True, None, False, "reduce-overhead", True),   # not compiled: the mode means nothing
    (True, False, True, "default", False),
    (False, None, True, "default", False),          # CPU: no CUDA graphs
    (False, True, False, "default", False)])
def test_cuda_graph_choice(cuda, asked, compiled, mode, want):
    assert own_cuda_graphs(cuda, asked, compiled, mode) is want


@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_nested_capture_is_refused(small_bundle, mode):
    with pytest.raises(BackendError, match="captures CUDA graphs itself; pass cuda_graphs=False"):
        own_cuda_graphs(True, True, True, mode)
    with pytest.raises(BackendError, match="captures CUDA graphs itself"):
        TorchRunner(Bundle(small_bundle("progan-64")), device="cpu", compile=True, compile_mode=mode, cuda_graphs=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (real streams)")
def test_runner_orders_its_stream_against_the_callers(small_bundle):  # pragma: no cover - GPU only
    """Ids written on a busy caller stream are read after they are written; the 8-bit
    images handed back stay valid while the runner's next call runs."""
    bundle = Bundle(small_bundle("spade-cityscapes"))
    h, w = bundle.resolution
    ref_runner = TorchRunner(bundle, device="cuda", precision="fp32", compile=False, cuda_graphs=False)
    runner = TorchRunner(bundle, device="cuda", precision="fp32", compile=False, output="tensor", check_inputs=False)
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, bundle.num_classes, (2, h, w), generator=g, dtype=torch.int32) for _ in range(3)]
    edge = torch.zeros(2, h, w, dtype=torch.uint8)
    want = [ref_runner.run({"label": x.numpy(), "instance_edge": edge.numpy()}, outputs=["image_u8"])["image_u8"]
            for x in ids]
    caller = torch.cuda.Stream()
    outs = []
    with torch.cuda.stream(caller):
        for x in ids:
            label = torch.zeros(2, h, w, dtype=torch.int32, device="cuda")
            torch.cuda._sleep(50_000_000)  # keep the caller's stream busy ...
            label.copy_(x.cuda(non_blocking=True))  # ... so these ids land late
            outs.append(runner.run({"label": label, "instance_edge": edge.cuda()}, outputs=["image_u8"])["image_u8"])
        got = [o.cpu().numpy() for o in outs]  # on the caller's stream
    for g_, w_ in zip(got, want):  # the same ids (stale ones would differ everywhere); cuDNN may pick other kernels
        assert np.abs(g_.astype(int) - w_.astype(int)).max() <= 1
