"""sdk serve on a real local Ray Serve: real HTTP requests, good and bad, batching,
503 under overload, and a short bounded load run."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
from PIL import Image

from tests.conftest import HANG_S, ROOT

ray = pytest.importorskip("ray", reason="sdk serve needs the scale extra (ray[data,serve])")

DEMO = ROOT / "demo" / "spade-street"
LABEL = ROOT / "samples" / "street_1_label.png"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def urls(local_ray):
    """One Serve instance on the session's Ray, two apps: batching at /, and a tight one
    (no batching, one request at a time, one queued) at /tight to overload."""
    from ray import serve

    from sdk.services.serve import ServeOptions, start

    port = _free_port()
    base = start(DEMO, ServeOptions(port=port, max_batch=8, batch_wait_ms=20, max_queued=256))
    tight = start(DEMO, ServeOptions(port=port, max_batch=1, max_ongoing=1, max_queued=1, cpus_per_replica=0.5),
                  name="tight", route_prefix="/tight")
    yield base, tight
    serve.shutdown()


def post(url: str, body: bytes, query: str = "", ctype: str = "image/png", timeout: float = HANG_S
         ) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(f"{url}/synthesize{query}", data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


def multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: image/png\r\n\r\n").encode()
            parts.append(head + data + b"\r\n")
        else:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def png(arr: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_synthesize_matches_the_sdk(urls):
    from sdk import Synthesizer

    base, _ = urls
    status, body, headers = post(base, LABEL.read_bytes(), "?seed=3")
    assert status == 200 and headers["content-type"] == "image/png" and headers["x-seed"] == "3"
    got = np.asarray(Image.open(io.BytesIO(body)), dtype=np.int16)
    expected = np.asarray(Synthesizer.from_pretrained(DEMO)(str(LABEL), seed=3), dtype=np.int16)
    assert got.shape == expected.shape == (256, 512, 3)
    assert np.abs(got - expected).max() <= 1  # thread counts differ: at most one level

    form, ctype = multipart({"label": ("l.png", LABEL.read_bytes()), "seed": "3"})
    status, body2, _ = post(base, form, ctype=ctype)
    assert status == 200 and np.array_equal(np.asarray(Image.open(io.BytesIO(body2))), got.astype(np.uint8))


def test_concurrent_requests_are_batched(urls):
    base, _ = urls
    labels = [LABEL.read_bytes(), (ROOT / "samples" / "street_2_label.png").read_bytes()] * 6
    results: list = [None] * len(labels)

    def go(i: int) -> None:
        results[i] = post(base, labels[i], f"?seed={i}")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(labels))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None and r[0] == 200 for r in results)
    assert max(int(r[2]["x-batch-size"]) for r in results) > 1  # some requests shared a runner call
    # Batching never mixes up answers: the same label gives the same image in any batch.
    imgs = [r[1] for r in results]
    a = [np.asarray(Image.open(io.BytesIO(b)), dtype=np.int16) for b in imgs]
    assert all(np.abs(a[i] - a[i % 2]).max() <= 1 for i in range(len(a)))
    assert np.abs(a[0] - a[1]).max() > 20


@pytest.mark.parametrize("body, query, ctype, message", [
    (b"", "", "image/png", "the label is empty (0 bytes); send a PNG file"),
    (b"not a png", "", "image/png", "cannot read the label as an image"),
    (png(np.full((256, 512), 99, np.uint8)), "", "image/png", "label holds 99 at (0, 0), which is not a Cityscapes file value"),
    (png(np.zeros((128, 128), np.uint8)), "", "image/png", "label is 128x128 (HxW); this model takes 256x512 maps"),
    (LABEL.read_bytes(), "?seed=abc", "image/png", "seed must be an integer, got 'abc'"),
    (png(np.full((256, 512, 3), 7, np.uint8), "RGB"), "", "image/png", "which is not in this model's palette"),
])
def test_bad_requests_get_400_and_one_line(urls, body, query, ctype, message):
    base, _ = urls
    status, text, headers = post(base, body, query, ctype)
    assert status == 400 and headers["content-type"].startswith("text/plain")
    lines = text.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_style_on_a_model_without_encoder_is_400(urls):
    base, _ = urls
    form, ctype = multipart({"label": ("l.png", LABEL.read_bytes()), "style": ("s.png", LABEL.read_bytes())})
    status, text, _ = post(base, form, ctype=ctype)
    assert status == 400 and "takes no style image" in text.decode()
    form, ctype = multipart({"seed": "1"})
    status, text, _ = post(base, form, ctype=ctype)
    assert status == 400 and "has no 'label' file" in text.decode()


def test_health_and_metadata(urls):
    from sdk.services.common import bundle_sha

    base, _ = urls
    with urllib.request.urlopen(f"{base}/healthz", timeout=HANG_S) as r:
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    with urllib.request.urlopen(f"{base}/metadata", timeout=HANG_S) as r:
        meta = json.loads(r.read())
    assert meta["name"] == "spade-demo-street" and meta["resolution"] == [256, 512]
    assert meta["num_classes"] == 35 and len(meta["classes"]) == 35 and len(meta["palette"]) == 35
    assert meta["max_batch"] == 8 and meta["bundle_sha"] == bundle_sha(DEMO)
    assert meta["takes_style"] is False and meta["takes_seed"] is False


def test_overload_answers_503_not_a_hang(urls):
    from sdk.benchmarks.serve_load import run_load

    _, tight = urls
    rows = run_load(tight, LABEL.read_bytes(), [32], requests=64, duration_s=30, timeout_s=30, warmup=0)
    st = rows[0]["statuses"]
    assert set(st) <= {"200", "503"}, st  # every request answered, none timed out
    assert st.get("503", 0) > 0 and st.get("200", 0) > 0 and rows[0]["sent"] == 64


def test_bounded_load_run_reports_latency(urls, tmp_path):
    base, _ = urls
    out = tmp_path / "load.json"
    r = subprocess.run([sys.executable, "benchmarks/serve_load.py", "--url", base, "--clients", "1", "8",
                        "--requests", "24", "--duration", "20", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())
    assert [row["clients"] for row in rows] == [1, 8]
    for row in rows:
        assert row["ok"] == row["sent"] == 24 and 0 < row["p50_ms"] <= row["p99_ms"] and row["throughput"] > 0
    assert rows[1]["mean_batch"] > 1.0
    assert "| clients |" in r.stdout


def test_load_script_refuses_other_hosts():
    from sdk.benchmarks.serve_load import check_loopback

    check_loopback("http://127.0.0.1:8000")
    check_loopback("http://localhost:1")
    check_loopback("http://[::1]:8000")
    for url in ("http://10.0.0.1:8000", "http://example.com", "http://192.168.1.2"):
        with pytest.raises(ValueError, match="loopback"):
            check_loopback(url)


def test_cli_serves_until_interrupted(tmp_path):
    """`python -m sdk serve` on its own local Ray: answers, then stops cleanly on Ctrl-C."""
    import os
    import signal

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sdk", "serve", "--bundle", str(DEMO), "--port", str(port),
                             "--max-batch", "4", "--cpus-per-replica", "0.5"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_DISABLE_USAGE_STATS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + HANG_S
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "sdk serve did not come up"
            time.sleep(0.5)
        status, body, _ = post(url, LABEL.read_bytes())
        assert status == 200 and Image.open(io.BytesIO(body)).size == (512, 256)
        lines = []
        while not any("Ctrl-C stops" in line for line in lines):  # the banner follows serve.run()
            line = proc.stdout.readline()
            assert line, "sdk serve closed its output before printing its routes"
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err[-2000:]
    banner = "".join(lines)
    assert f"serving {DEMO}" in banner and "/synthesize" in banner and "Traceback" not in err


def test_ctrl_c_exits_even_when_serve_shutdown_hangs():
    """Serve's shutdown can wait forever on a controller that is gone: Ctrl-C still ends the
    process, with one line that says so, within the shutdown budget."""
    code = ("import time, ray, sdk.services.serve as m\n"
            "m.serve.shutdown = lambda: time.sleep(600)\n"
            "ray.shutdown = lambda: None\n"
            "m._shutdown_within(1.0)\n"
            "print('not reached')\n")
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0 and "not reached" not in r.stdout
    assert "did not shut down within 1 s" in r.stderr and "Traceback" not in r.stderr
    assert time.monotonic() - start < 60
