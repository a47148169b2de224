"""An HTTP endpoint over a bundle on Ray Serve, with dynamic batching.

``python -m sdk serve --bundle demo/spade-street`` (or :func:`serve_forever`) answers:

* ``POST /synthesize`` -- the body is a label map PNG (``Content-Type: image/png``, seed in
  the query: ``/synthesize?seed=3``), or a multipart form with a ``label`` file and the
  optional ``instance`` file (an instance map, models trained with instance edges),
  ``seed`` field and ``style`` image (models with a style encoder). The label is read by
  the bundle's :class:`~sdk.LabelIntake` as every door reads it (a dataset file through the
  bundle's convention; ``--label-format ids`` for maps of model ids). Returns the image as a PNG
  (``X-Seed``, ``X-Batch-Size``, ``X-Inference-Ms`` and, for models with instance edges,
  ``X-Instance-Edges`` headers say how it was made). Bad input gets HTTP 400 whose body is
  the SDK's one-line error, the same line every door gives; when more than ``max_queued``
  requests wait for a replica the server answers 503 at once.
* ``GET /healthz`` -- 200 once the replica has loaded its model.
* ``GET /metadata`` -- the model: name, family, resolution, classes, palette, inputs,
  backend, batching settings.

Requests that arrive within ``batch_wait_ms`` of each other run as one batch of up to
``max_batch`` (``@serve.batch``), each with its own seed: the image a request gets is the
one ``Synthesizer(label, seed=seed)`` gives, batched or not. Every label is read (and
refused, alone) before it joins a batch; should the synthesis still refuse a batch, its
requests are run one by one, so a bad request fails itself only.
"""

import asyncio
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from PIL import Image
from ray import serve

from sdk import Bundle, Label, SDKError
from sdk.labels import open_image
from sdk.manifest import Kind
from sdk.notices import notice

from .common import bundle_sha, edges_line, error_line, isolated, open_synthesizer, png_bytes, start_ray, threads_for

API_NAME = "sdk"


@dataclass
class ServeOptions:
    """Deployment settings (the ``python -m sdk serve`` flags)."""

    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int = 1
    max_batch: int = 8
    batch_wait_ms: float = 10.0
    max_ongoing: int | None = None
    """Requests one replica holds at once; default max(2 x max_batch, 64). Held requests wait in
    the replica's batch queue, which costs nothing; requests beyond it wait in Ray's router,
    which polls full replicas with exponential backoff (up to 1 s) and leaves the replica idle:
    the demo on 2 cores at 32 clients, max batch 8, went from 18.3 images/s (p99 3.2 s) with
    16 held to 57.6 images/s (p99 0.64 s) with 64 (benchmarks/results/scale-2026-11-24*)."""
    max_queued: int = 64
    cpus_per_replica: float = 1.0
    gpus_per_replica: float | None = None
    backend: str = "auto"
    png_level: int = 1
    request_timeout_s: float = 30.0
    label_format: str = "dataset"
    """What label maps hold: the dataset's files, read through the bundle's convention, or
    ``"ids"``: model class ids (as ``Synthesizer.from_pretrained(label_format=)``)."""
    labels: str | None = None
    """The old name of ``label_format`` (deprecated: it goes in the next version)."""

    def __post_init__(self) -> None:
        from sdk.conventions import check_label_format

        self.label_format, self.labels = check_label_format(self.label_format, self.labels), None


app = FastAPI(title="sdk synthesis", docs_url=None, redoc_url=None)


def _bad(msg: str, status: int = 400) -> PlainTextResponse:
    return PlainTextResponse(msg + "\n", status_code=status)


def _seed(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise SDKError(f"seed must be an integer, got {text[:40]!r}") from None
    if not 0 <= value < 2**63:
        raise SDKError(f"seed must be in 0..2**63-1, got {value}")
    return value


async def _file(form: Any, name: str) -> bytes | None:
    """The bytes of a multipart file field, None when absent."""
    field = form.get(name)
    if field is None or isinstance(field, str):
        return None
    return await field.read()


@serve.deployment(name="Synthesis")
@serve.ingress(app)
class SynthesisService:
    """One replica: one Synthesizer, requests batched by ``@serve.batch``."""

    def __init__(self, bundle: str, options: dict[str, Any]) -> None:
        opts = ServeOptions(**options)
        self.s = open_synthesizer(bundle, backend=opts.backend, threads=threads_for(opts.cpus_per_replica),
                                  label_format=opts.label_format)
        b = self.s.bundle
        if b.task != "semantic":
            raise SDKError(f"{b.name} is a {b.task} model; sdk serve serves label-to-image models")
        zeros = np.zeros(b.resolution, np.int32)  # model id 0 everywhere: load and warm the runner
        self.s(self.s.intake.read(zeros, label_format="ids", regions_as_edges=True))
        self.opts = opts
        self.sha = bundle_sha(bundle)
        self.has_style = b.has_graph("encoder") and not self.s.has_codes
        self.synthesize_batch.set_max_batch_size(opts.max_batch)
        self.synthesize_batch.set_batch_wait_timeout_s(opts.batch_wait_ms / 1e3)

    @app.get("/healthz")
    def healthz(self) -> dict[str, str]:
        return {"status": "ok", "model": self.s.bundle.name}

    @app.get("/metadata")
    def metadata(self) -> dict[str, Any]:
        b = self.s.bundle
        n = b.num_classes or 0
        names = b.label.get("classes") or [f"class {i}" for i in range(n)]
        return {"name": b.name, "family": b.family, "task": b.task, "resolution": list(b.resolution),
                "num_classes": n, "classes": names, "palette": b.label.get("palette"),
                "instance_edge": bool(b.label.get("instance_edge")), "label_format": self.s.label_format,
                "labels": {"ids": "model"}.get(self.s.label_format, "dataset"),  # the old key: goes next version
                "convention": (b.label.get("convention") or {}).get("name"),
                "inputs": [{"name": i.name, "kind": i.kind.value, "shape": list(i.shape), "dtype": i.dtype}
                           for i in b.graph("model").inputs],
                "takes_style": self.has_style, "takes_seed": b.graph("model").takes(Kind.LATENT, Kind.CODES),
                "backend": self.s.runner().describe(), "bundle_sha": self.sha,
                "max_batch": self.opts.max_batch, "batch_wait_ms": self.opts.batch_wait_ms}

    @app.post("/synthesize")
    async def synthesize(self, request: Request) -> Response:
        try:
            label, seed, style = await self._parse(request)
        except SDKError as exc:
            return _bad(str(exc))
        png, batch, ms = await self.synthesize_batch((label, seed, style))
        if isinstance(png, Exception):  # this request's own failure; the others of its batch are served
            return _bad(error_line(png), 400 if isinstance(png, SDKError) else 500)
        headers = {"X-Batch-Size": str(batch), "X-Inference-Ms": f"{ms:.2f}"}
        if seed is not None:
            headers["X-Seed"] = str(seed)
        if label.edges_from:
            headers["X-Instance-Edges"] = label.edges_from
        return Response(png, media_type="image/png", headers=headers)

    async def _parse(self, request: Request) -> tuple[Label, int | None, Image.Image | None]:
        """The request's label (read by the intake, off the event loop: health checks keep
        their answers while a large map decodes), seed and style image."""
        ctype = request.headers.get("content-type", "")
        style = instance = None
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            label = await _file(form, "label")
            if label is None:
                raise SDKError("the multipart form has no 'label' file; send the label map PNG as the field 'label'")
            instance = await _file(form, "instance")
            seed = _seed(form.get("seed") if isinstance(form.get("seed"), str) else None)
            style_bytes = await _file(form, "style")
            if style_bytes is not None:
                if not self.has_style:
                    raise SDKError(f"{self.s.bundle.name} takes no style image (it has no style encoder); "
                                   f"send the label map only")
                style = open_image(style_bytes, "style image", lossless=False)
        else:
            label = await request.body()
            seed = _seed(request.query_params.get("seed"))
        read = await asyncio.to_thread(self.s.intake.read, label, instance, regions_as_edges=True)
        return read, seed, style

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def synthesize_batch(self, items: list[tuple[Label, int | None, Any]]) -> list[Any]:
        # Runs off the event loop, so the replica keeps parsing requests and answering
        # health checks while a batch synthesizes. Returns one result per request: its
        # PNG, or its own exception (never raised to the whole batch).
        return await asyncio.to_thread(self._run_batch, items)

    def _run_batch(self, items: list[tuple[Label, int | None, Any]]) -> list[tuple[Any, int, float]]:
        start = time.perf_counter()

        def run(part: list[tuple[Label, int | None, Any]]) -> list[Image.Image]:
            styles = [i[2] for i in part]
            return self.s.synthesize_many([i[0] for i in part], [i[1] for i in part],
                                          styles if any(st is not None for st in styles) else None)

        images = isolated(run, items)
        ms = (time.perf_counter() - start) * 1e3
        return [(img if isinstance(img, Exception) else png_bytes(img, self.opts.png_level), len(items), ms)
                for img in images]


def build_app(bundle: str | Path, options: ServeOptions | None = None) -> Any:
    """The Serve application (``serve.run(build_app(...))``), sized by ``options``."""
    import ray

    opts = options or ServeOptions()
    if opts.max_batch < 1 or opts.replicas < 1:
        raise SDKError(f"--max-batch and --replicas must be >= 1, got {opts.max_batch} and {opts.replicas}")
    gpus = opts.gpus_per_replica
    if gpus is None:
        gpus = 1.0 if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) else 0.0
    ongoing = opts.max_ongoing or max(2 * opts.max_batch, 64)
    return SynthesisService.options(
        num_replicas=opts.replicas, max_ongoing_requests=ongoing, max_queued_requests=opts.max_queued,
        ray_actor_options={"num_cpus": opts.cpus_per_replica, "num_gpus": gpus},
    ).bind(str(Path(bundle).resolve()), asdict(opts))


def start(bundle: str | Path, options: ServeOptions | None = None, *, address: str | None = None,
          name: str = API_NAME, route_prefix: str = "/") -> str:
    """Start Ray (or join ``address``), Serve's HTTP proxy and the app; returns its base URL."""
    import ray

    opts = options or ServeOptions()
    Bundle(bundle, verify=False)  # a missing bundle is a one-line error here, not a replica crash loop
    start_ray(address)
    http = {"host": opts.host, "port": opts.port, "request_timeout_s": opts.request_timeout_s}
    for attempt in (1, 2):
        try:
            serve.start(http_options=http, logging_config={"log_level": "WARNING", "enable_access_log": False})
            break
        except ray.exceptions.RayActorError as exc:
            # Serve kills an HTTP proxy that does not come up in time (seen on a loaded 2-core
            # machine); once more, then the error
            if attempt == 2:
                raise
            notice(f"Ray Serve's HTTP proxy did not start ({type(exc).__name__}); starting it again")
            serve.shutdown()
    serve.run(build_app(bundle, opts), name=name, route_prefix=route_prefix)
    host = "127.0.0.1" if opts.host in ("0.0.0.0", "::") else opts.host
    return f"http://{host}:{opts.port}{route_prefix.rstrip('/')}"


def serve_forever(bundle: str | Path, options: ServeOptions | None = None, *, address: str | None = None) -> None:
    """``python -m sdk serve``: start, print the routes, serve until Ctrl-C, shut down."""
    opts = options or ServeOptions()
    url = start(bundle, opts, address=address)
    print(f"serving {Path(bundle)} at {url}  (replicas {opts.replicas}, max batch {opts.max_batch}, "
          f"wait {opts.batch_wait_ms:g} ms, 503 beyond {opts.max_queued} queued)")
    print(f"  curl --data-binary @label.png -H 'Content-Type: image/png' '{url}/synthesize?seed=0' -o out.png")
    edges = edges_line(Bundle(bundle, verify=False), "curl -F label=@label.png -F instance=@instance.png")
    if edges:
        print(f"  {edges}")
    print(f"  {url}/healthz   {url}/metadata        Ctrl-C stops", flush=True)
    _stop_on_signals()
    try:
        while True:
            time.sleep(3600)
    finally:
        _shutdown_within(SHUTDOWN_TIMEOUT_S)


def _stop_on_signals() -> None:
    """Make Ctrl-C (and SIGTERM) raise KeyboardInterrupt here whatever this process inherited.

    A process started with SIGINT blocked (Ray blocks it in the processes it starts, and a
    parent can pass the block on) never sees Ctrl-C: in CI the server ran on after it.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


SHUTDOWN_TIMEOUT_S = 60.0
"""How long Ctrl-C waits for Serve and Ray to stop before the process exits anyway."""


def _shutdown_within(seconds: float) -> None:
    """``serve.shutdown()`` then ``ray.shutdown()``, in a thread given ``seconds``.

    Serve's shutdown can wait without end on a controller that is already gone (Ray retries
    its ``graceful_shutdown`` task forever, as Ray's own log lines in our CI runs say): then
    the process says so and exits, and the local Ray's processes end with it.
    """
    import threading

    import ray

    def stop() -> None:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()

    worker = threading.Thread(target=stop, daemon=True, name="sdk-serve-shutdown")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        print(f"[sdk] Serve did not shut down within {seconds:g} s; exiting without waiting for it",
              file=sys.stderr, flush=True)
        os._exit(0)


__all__ = ["ServeOptions", "SynthesisService", "build_app", "serve_forever", "start"]
