"""torch backend: the network rebuilt from the bundle's config and weights, on CPU or GPU.

On a CUDA device this is the GPU runner, built to keep the work on the device:

* class ids in (int32, 4 bytes a pixel), 8-bit RGB out: the one-hot and the conversion
  to 8 bits run in the graph, on the GPU;
* FP16 (default on CUDA) or BF16 weights and activations, channels-last, normalisation
  layers in FP32; ``precision="fp32"`` turns TF32 off, ``"tf32"`` allows it;
* host feeds go through pinned staging buffers and are copied on the runner's own CUDA
  stream; each batch size is captured once as a CUDA graph over static buffers and
  replayed (``cuda_graphs=False`` runs the module directly);
* ``torch.compile`` (default on CUDA) with its compiled artifacts saved next to the
  bundle's engines (``engines/torch-<precision>-<device>-<versions>/compile_cache.bin``,
  or the user cache when the bundle is read-only) and loaded by the next process;
* CUDA tensors are accepted as feeds (no host round trip) and ``output="tensor"``
  returns device tensors, for apps that keep the label map on the GPU; the runner's
  stream is ordered against the caller's by the rules of ``train/deploy/streams.py``.

On CPU it runs the module in FP32 (or BF16), optionally compiled; FP16 on CPU is for
testing the GPU's default precision (``train/deploy/precision.py``: convolutions in FP32
from FP16 values, as a GPU accumulates) and says so once. Needs the ``torch`` extra and
the ``train`` package (the network code). The CUDA-only parts are :class:`_CapturedBatch`
and the staging in :meth:`TorchRunner._run_cuda`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sdk.atomic import write_bytes_atomic
from sdk.backends.base import Runner
from sdk.bundle import Bundle
from sdk.errors import BackendError, BundleError, LabelError
from sdk.manifest import Kind
from sdk.notices import notice
from sdk.train.deploy.streams import on_side_stream, own_cuda_graphs

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


def build_model(bundle: Bundle) -> Any:
    """The bundle's network in eval mode, export-clean (spectral norm folded)."""
    try:
        from safetensors.torch import load_file

        from sdk.train.deploy.fold import export_ready
        from sdk.train.deploy.weights import deploy_state, is_deploy_weights
        from sdk.train.models import get_preset
        from sdk.train.models.config_codec import ConfigMismatch, config_from_json
        from sdk.train.models.official import CheckpointMismatch, check_and_load
    except ImportError as exc:
        raise BackendError(f"the torch backend needs the torch extra ({exc}); pip install 'sdk[torch]'") from exc
    preset = get_preset(bundle.name)
    try:
        config = config_from_json(type(preset.config), bundle.manifest.config)
    except ConfigMismatch as exc:
        raise BundleError(f"{bundle.path}: {exc}; re-export it") from None
    model = preset.model_cls(config)
    if getattr(model, "noise_input", None) == "codes" and bundle.graph("model").takes(Kind.LATENT):
        model.noise_input = "latent"  # an OASIS bundle from before per-class noise: its graph takes one z
    weights = bundle.file("weights.safetensors")
    if not weights.is_file():
        raise BundleError(f"{weights} is missing; the torch backend needs the bundle's weights")
    try:
        if is_deploy_weights(weights):  # the export-ready network's state (spectral norm folded)
            ready = export_ready(model)
            check_and_load(ready, deploy_state(weights), f"bundle weights {weights}")
            return ready
        check_and_load(model, load_file(str(weights)), f"bundle weights {weights}")
    except CheckpointMismatch as exc:
        raise BundleError(str(exc)) from exc
    return export_ready(model)


def deploy_module(model: Any, graph: str, device: Any, precision: str) -> Any:
    """``model``'s graph as the runner runs it: on ``device``, at ``precision`` (norms FP32,
    channels-last on CUDA), with 8-bit image outputs. Returns the :class:`GraphSpec`."""
    import torch

    from sdk.train.deploy.precision import ReducedPrecision
    from sdk.train.models.spec import GraphSpec

    spec = model.graphs()[graph]
    module = spec.module.to(device).eval()
    cuda = device.type == "cuda"
    if precision in ("fp16", "bf16"):
        module = ReducedPrecision(module, torch.float16 if precision == "fp16" else torch.bfloat16,
                                  channels_last=cuda).eval()
    elif cuda:
        module = module.to(memory_format=torch.channels_last)
    return GraphSpec(module, spec.inputs, spec.outputs).with_uint8_outputs()


def cache_files(bundle: Bundle, key: str) -> list[Path]:
    """Where compiled artifacts of ``key`` may live, in order: the bundle's
    ``engines/<key>/compile_cache.bin``, then ``$XDG_CACHE_HOME/sdk/<name>-<weights sha>/<key>/``
    (for bundles that cannot be written)."""
    sha = bundle.manifest.files.get("weights.safetensors", {}).get("sha256", "unknown")[:16]
    user = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sdk" / f"{bundle.name}-{sha}"
    return [bundle.path / "engines" / key / "compile_cache.bin", user / key / "compile_cache.bin"]


class _CapturedBatch:
    """CUDA only: the module captured as a CUDA graph at one batch size, with static device
    buffers and pinned host buffers for the copies in and out."""

    def __init__(self, torch: Any, module: Any, examples: list[Any], stream: Any, pool: Any) -> None:
        self.static_in = [x.clone() for x in examples]
        stream.wait_stream(torch.cuda.current_stream(stream.device))  # the clones were made on the current stream
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(2):  # compile and let cuDNN pick its kernels before capture
                module(*self.static_in)
            stream.synchronize()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=pool, stream=stream):
                out = module(*self.static_in)
        self.static_out = out if isinstance(out, tuple) else (out,)
        self.pinned_in = [torch.empty(x.shape, dtype=x.dtype, pin_memory=True) for x in self.static_in]
        self.pinned_out = [torch.empty(o.shape, dtype=o.dtype, pin_memory=True) for o in self.static_out]
        # recorded on the runner's stream after the copies out of pinned_in: the host waits on
        # it before overwriting them (with output="tensor" no call ends in a host sync)
        self.inputs_copied = torch.cuda.Event()


class TorchRunner(Runner):
    """A bundle graph in PyTorch, on CPU or a CUDA GPU (see the module docstring).

    Args:
        device: ``"cuda"``, ``"cuda:1"``, ``"cpu"``; default CUDA when available.
        precision: ``fp32`` | ``tf32`` | ``fp16`` | ``bf16``; default fp16 on CUDA, fp32 on CPU
            (fp16 on CPU: for testing, slow; tf32 needs a GPU).
        compile: ``torch.compile`` the module (default: on CUDA).
        compile_mode: passed to ``torch.compile`` (default ``"default"``; CUDA graphs are ours).
        cuda_graphs: capture and replay each batch size as a CUDA graph (default: on CUDA,
            unless ``compile_mode`` captures its own: ``"reduce-overhead"``, ``"max-autotune"``).
        output: ``"numpy"`` (host arrays) or ``"tensor"`` (device tensors).
        threads: CPU threads of torch (process-wide: torch has one pool).
        check_inputs: check the range of class ids given as tensors (one reduction, and on a
            GPU a sync, per call; the Synthesizer checks the arrays it builds itself).
    """

    name = "torch"

    def __init__(self, bundle: Bundle, graph: str = "model", *, device: str | None = None,
                 precision: str | None = None, compile: bool | None = None, compile_mode: str = "default",
                 cuda_graphs: bool | None = None, output: str = "numpy", check_inputs: bool = True,
                 threads: int | None = None, model: Any = None) -> None:
        super().__init__(bundle, graph)
        try:
            import torch
        except ImportError as exc:
            raise BackendError(f"the torch backend needs torch ({exc}); pip install 'sdk[torch]'") from exc
        self.torch = torch
        try:
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except RuntimeError as exc:
            raise BackendError(f"device {device!r}: {exc}; use 'cpu', 'cuda' or 'cuda:N'") from exc
        cuda = self.device.type == "cuda"
        if cuda and not torch.cuda.is_available():
            raise BackendError(f"device {self.device} asked for, but torch sees no CUDA GPU here "
                               f"(torch {torch.__version__}); use device='cpu'")
        self.precision = precision or ("fp16" if cuda else "fp32")
        if self.precision not in PRECISIONS:
            raise BackendError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if not cuda and self.precision == "tf32":
            raise BackendError("precision tf32 needs a CUDA GPU; on CPU use fp32 or bf16")
        if not cuda and self.precision == "fp16":
            notice("precision fp16 on CPU is for testing the GPU's FP16 path: it is slow here "
                   "(convolutions run in FP32 from FP16 values); use fp32 or bf16 on a CPU")
        if output not in ("numpy", "tensor"):
            raise BackendError(f"output must be 'numpy' or 'tensor', got {output!r}")
        if threads is not None:
            if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
                raise BackendError(f"threads must be a whole number >= 1, got {threads!r}")
            torch.set_num_threads(threads)  # process-wide: torch has one CPU thread pool
        self.output = output
        self.check_inputs = check_inputs
        if cuda:  # TF32 only when asked for; fixed shapes let cuDNN pick the fastest kernels
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.precision == "tf32"
            torch.backends.cudnn.benchmark = True
        spec = deploy_module(model if model is not None else build_model(bundle), graph, self.device, self.precision)
        names = [s.name for s in spec.outputs]
        if names != self.output_names:
            raise BundleError(f"the network's {graph!r} outputs {names} differ from the bundle's "
                              f"{self.output_names}: re-export the bundle with this sdk")
        self.spec = spec
        self.input_order = [s.name for s in spec.inputs]
        self.compiled = cuda if compile is None else compile
        self.module = spec.module
        self._cache_files: list[Path] = []
        self._cache_saved = False
        if self.compiled:
            self._cache_files = cache_files(bundle, self.cache_key())
            self._load_compile_cache()
            self.module = torch.compile(self.module, mode=compile_mode, dynamic=False)
        self.cuda_graphs = own_cuda_graphs(cuda, cuda_graphs, self.compiled, compile_mode)
        self._captured: dict[int, _CapturedBatch] = {}
        self._stream = torch.cuda.Stream(self.device) if cuda else None
        self._pool = torch.cuda.graph_pool_handle() if self.cuda_graphs else None

    # -- identity ------------------------------------------------------------------------
    def cache_key(self) -> str:
        """``torch-<precision>-<device>-torch<version>[-cuda<version>]``, as engine keys."""
        from sdk.engines import cpu_device, gpu_device

        torch = self.torch
        versions = f"torch{torch.__version__.split('+')[0]}"
        if self.device.type == "cuda":
            device = gpu_device(torch.cuda.get_device_name(self.device), torch.cuda.get_device_capability(self.device))
            versions += f"-cuda{torch.version.cuda}"
        else:
            device = cpu_device()
        return f"torch-{self.precision}-{device}-{versions}"

    def describe(self) -> str:
        how = "compiled" if self.compiled else "eager"
        graphs = ", CUDA graphs" if self.cuda_graphs else ""
        return f"torch {how} {self.precision} {self.device}{graphs}"

    # -- compiled-artifact cache -----------------------------------------------------------
    def _load_compile_cache(self) -> None:
        for path in self._cache_files:
            if path.is_file():
                try:
                    self.torch.compiler.load_cache_artifacts(path.read_bytes())
                    self._cache_saved = True
                    self.cache_loaded_from: Path | None = path
                    return
                except Exception:  # a cache from another build is only a cache: compile anew
                    pass
        self.cache_loaded_from = None

    def _save_compile_cache(self) -> None:
        """After the first compiled call: write the artifacts where the next process looks."""
        if not self._cache_files or self._cache_saved:
            return
        self._cache_saved = True
        artifacts = self.torch.compiler.save_cache_artifacts()
        if not artifacts:
            return
        for path in self._cache_files:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(path, artifacts[0])
                return
            except OSError:
                continue  # read-only bundle: try the user cache; none writable: compile next time

    # -- running ---------------------------------------------------------------------------
    def _cast(self, feeds: dict[str, Any], dtypes: dict[str, str]) -> dict[str, Any]:
        torch = self.torch
        out = {}
        for name, x in feeds.items():
            if isinstance(x, torch.Tensor):
                want = getattr(torch, dtypes[name])
                if x.dtype != want:
                    x = x.to(want)
                if self.check_inputs and name in self._label_inputs():
                    self._check_ids(name, x)
                out[name] = x
            else:
                out[name] = np.ascontiguousarray(x, dtype=dtypes[name])
        return out

    def _label_inputs(self) -> dict[str, int]:
        return {s.name: s.attrs["num_classes"] for s in self.spec.inputs if s.kind == Kind.LABEL}

    def _check_ids(self, name: str, x: Any) -> None:
        lo, hi = (int(v) for v in self.torch.aminmax(x))
        classes = self._label_inputs()[name]
        if lo < 0 or hi >= classes:
            raise LabelError(f"{name} holds ids {lo}..{hi}; this model takes 0..{classes - 1}")

    def _run(self, feeds: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        torch = self.torch
        try:
            if self.cuda_graphs:
                result = self._run_cuda(feeds, outputs)
            else:
                args = [torch.as_tensor(feeds[n]).to(self.device, non_blocking=True) for n in self.input_order]
                with torch.inference_mode(), self._cpu_fp16():
                    out = self.module(*args)
                out = dict(zip(self.output_names, out if isinstance(out, tuple) else (out,)))
                result = {n: out[n] if self.output == "tensor" else out[n].cpu().numpy() for n in outputs}
        except torch.cuda.OutOfMemoryError as exc:
            raise self._memory_error(feeds) from exc
        if self.compiled:
            self._save_compile_cache()
        return result

    def _cpu_fp16(self) -> Any:
        """FP16 on CPU in eager mode: convolutions through FP32 (see ``precision.py``)."""
        if self.device.type == "cpu" and self.precision == "fp16" and not self.compiled:
            from sdk.train.deploy.precision import cpu_fp16_convolutions

            return cpu_fp16_convolutions()
        return contextlib.nullcontext()

    def _run_cuda(self, feeds: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        """CUDA only: stage host feeds in pinned memory, copy on the runner's stream into the
        captured batch's static inputs, replay, copy the requested outputs out (device
        tensors handed to the caller's stream, or host arrays after a sync)."""
        torch = self.torch
        batch = int(feeds[self.input_order[0]].shape[0])
        slot = self._captured.get(batch)
        if slot is None:
            examples = [torch.as_tensor(feeds[n]).to(self.device) for n in self.input_order]
            slot = self._captured[batch] = _CapturedBatch(torch, self.module, examples, self._stream, self._pool)
        index = {n: i for i, n in enumerate(self.output_names)}
        tensors = self.output == "tensor"

        def work() -> dict[str, Any]:  # runs on the runner's stream
            if not all(isinstance(feeds[n], torch.Tensor) for n in self.input_order):
                slot.inputs_copied.synchronize()  # the last call's copies out of pinned_in are done
            for name, static, pinned in zip(self.input_order, slot.static_in, slot.pinned_in):
                x = feeds[name]
                if isinstance(x, torch.Tensor):
                    static.copy_(x, non_blocking=True)
                else:
                    pinned.numpy()[...] = x
                    static.copy_(pinned, non_blocking=True)
            slot.inputs_copied.record()
            slot.graph.replay()
            if tensors:  # copies: the next replay overwrites static_out
                return {n: slot.static_out[index[n]].clone() for n in outputs}
            for n in outputs:
                slot.pinned_out[index[n]].copy_(slot.static_out[index[n]], non_blocking=True)
            return {}

        result = on_side_stream(torch.cuda, self._stream, work, lambda r: r.values())
        if tensors:
            return result
        self._stream.synchronize()  # the host reads pinned_out next
        return {n: slot.pinned_out[index[n]].numpy().copy() for n in outputs}

    def _memory_error(self, feeds: dict[str, Any]) -> BackendError:
        """Out of device memory: say which batch size fits, from the free memory and the
        memory one image took (measured at batch 1)."""
        torch = self.torch
        batch = int(feeds[self.input_order[0]].shape[0])
        self._captured.clear()
        torch.cuda.empty_cache()
        free, total = torch.cuda.mem_get_info(self.device)
        fits = 0
        try:
            one = {n: (x[:1] if isinstance(x, torch.Tensor) else np.ascontiguousarray(x[:1]))
                   for n, x in feeds.items()}
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            with torch.inference_mode():
                self.module(*[torch.as_tensor(one[n]).to(self.device) for n in self.input_order])
            per_image = max(torch.cuda.max_memory_allocated(self.device) - base, 1)
            fits = max(int(free // per_image), 0)
        except torch.cuda.OutOfMemoryError:
            pass
        torch.cuda.empty_cache()
        hint = (f"batch {fits} fits: pass batch_size={fits} (or fewer images per call)" if fits >= 1 else
                "even one image does not fit: free GPU memory or use precision='fp16'")
        return BackendError(f"out of GPU memory at batch {batch} on {self.device} "
                            f"({free / 2**30:.1f} of {total / 2**30:.1f} GiB free); {hint}")

    # -- editing -----------------------------------------------------------------------------
    def edit_session(self, feeds: dict[str, Any], outputs: Sequence[str] | None = None, *,
                     block: int | None = None, full_above: float | None = None, min_side: int | None = None,
                     tol: float = 0.0) -> Any:
        """An editing session started from ``feeds`` (``train/deploy/incremental.py``).

        ``session.last`` holds the outputs of ``feeds`` (a full pass), ``session.reason`` why
        updates are full passes (None for a local generator: SPADE, OASIS, GroupDNet);
        ``session.update(new_feeds) -> (outputs, stats)`` re-runs only what the change of the
        label map (and instance edges) reaches. ``stats``: ``incremental``, ``reason`` (why
        a full pass), ``changed`` (fraction of pixels), ``recomputed``, ``ms``. A local
        generator's session runs the eager module (not the compiled one or CUDA graphs);
        ``block``, ``full_above`` and ``min_side`` override the measured tiling (``TUNING``).
        ``tol > 0`` makes a preview session: the main path's convolutions also keep their
        output where their input moved by less than ``tol`` of its range (``preview.py``),
        faster and no longer exact (``stats["main_recomputed"]``); 0, the default, is exact."""
        from sdk.train.deploy.incremental import EditSession

        return EditSession(self, feeds, outputs, block=block, full_above=full_above, min_side=min_side, tol=tol)

    def close(self) -> None:
        self._captured.clear()
        self.module = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
