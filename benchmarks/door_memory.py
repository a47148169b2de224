"""Peak memory of every door on small files of huge dimensions, in one command.

    python benchmarks/door_memory.py [--bundle demo/spade-street] [--out benchmarks/results/door-memory-DATE]

Writes PNGs that are small on disk but large in pixels -- 8192x16384 and 12000x12000 (above
the intake's limit: refused from the header), and 4096x8192 8-bit, 16-bit and RGB maps (at the
limit, of the demo's aspect ratio: decoded and resized) -- and sends each through every door:
the Python API, ``python -m sdk synthesize``, ``python -m sdk batch`` (its own local Ray),
``python -m sdk serve`` (HTTP on loopback) and the app's start map (``sdk app --label``: the
same intake call as its callback). Each door runs as a process tree; the peak resident set of
every process in it (``VmHWM`` from ``/proc``, polled every 20 ms) is recorded, and the door's
figure is its largest process. Target: no door above 700 MB. Linux only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_MB = 700.0
FILES = {  # name -> (H, W, kind)
    "8192x16384-8bit": (8192, 16384, "L"),
    "12000x12000-8bit": (12000, 12000, "L"),
    "4096x8192-8bit": (4096, 8192, "L"),
    "4096x8192-16bit": (4096, 8192, "I;16"),
    "4096x8192-rgb": (4096, 8192, "RGB"),
}


def huge_png(path: Path, h: int, w: int, kind: str = "L", value: int = 7) -> Path:
    """A PNG of ``h`` x ``w`` pixels, all ``value`` (8-bit grey, 16-bit grey, or RGB of that grey),
    written row by row through zlib: a few hundred KB on disk, never the image in memory."""
    depth, colour, channels = {"L": (8, 0, 1), "I;16": (16, 0, 1), "RGB": (8, 2, 3)}[kind]
    sample = value.to_bytes(2, "big") if depth == 16 else bytes([value])
    row = b"\0" + sample * (w * channels)  # filter byte 0, then the samples

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(h)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))
    return path


# -- peak memory of a process tree ----------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _hwm_mb(pid: int) -> tuple[float, str] | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024, cmd[:120]
    return None


class TreePeak:
    """Polls the peak RSS (VmHWM) of ``pid`` and all its descendants until stopped."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self.pid, self.every_s = pid, every_s
        self.peaks: dict[int, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            kids = _children()
            todo, seen = [self.pid], set()
            while todo:
                p = todo.pop()
                if p in seen:
                    continue
                seen.add(p)
                todo += kids.get(p, [])
                got = _hwm_mb(p)
                if got and got[0] >= self.peaks.get(p, (0.0, ""))[0]:
                    self.peaks[p] = got
            time.sleep(self.every_s)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        pid, (mb, cmd) = max(self.peaks.items(), key=lambda kv: kv[1][0]) if self.peaks else (0, (0.0, ""))
        return {"peak_mb": round(mb, 1), "process": cmd, "processes": len(self.peaks)}


def run_tree(cmd: list[str], timeout_s: float = 600) -> dict[str, Any]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_DISABLE_USAGE_STATS": "1"})
    peak = TreePeak(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        result = peak.stop()
    lines = [ln for ln in (err.strip().splitlines() + out.strip().splitlines()) if ln.startswith("error:")]
    return {**result, "returncode": proc.returncode, "said": (lines or [""])[-1][:160]}


# -- the doors ----------------------------------------------------------------------------------
def door_python(bundle: str, png: Path, tmp: Path) -> dict[str, Any]:
    code = ("import sys\nfrom sdk import Synthesizer, SDKError\n"
            "s = Synthesizer.from_pretrained(sys.argv[1])\n"
            "try:\n    s(sys.argv[2]).save(sys.argv[3])\nexcept SDKError as e:\n    print('error:', e); sys.exit(2)\n")
    return run_tree([sys.executable, "-c", code, bundle, str(png), str(tmp / "py.png")])


def door_cli(bundle: str, png: Path, tmp: Path) -> dict[str, Any]:
    return run_tree([sys.executable, "-m", "sdk", "synthesize", "--bundle", bundle, "--label", str(png),
                     "--out", str(tmp / "cli.png")])


def door_batch(bundle: str, png: Path, tmp: Path) -> dict[str, Any]:
    folder = tmp / f"batch-in-{png.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / png.name
    if not target.exists():
        os.link(png, target)
    r = run_tree([sys.executable, "-m", "sdk", "batch", "--bundle", bundle, "--input", str(folder),
                  "--out", str(tmp / f"batch-out-{png.stem}"), "--workers", "1"])
    recs = tmp / f"batch-out-{png.stem}" / "records.jsonl"
    errors = [json.loads(ln).get("error", "") for ln in recs.read_text().splitlines()] if recs.is_file() else []
    return {**r, "said": (errors[0][:160] if errors and errors[0] else r["said"])}


def door_app(bundle: str, png: Path, tmp: Path) -> dict[str, Any]:
    code = ("import sys\nfrom sdk import SDKError\nfrom sdk.services.app import AppSession\n"
            "try:\n    s = AppSession(sys.argv[1], label=sys.argv[2])\n    print(s.render(None, 0, None, None)[0])\n"
            "except SDKError as e:\n    print('error:', e); sys.exit(2)\n")
    return run_tree([sys.executable, "-c", code, bundle, str(png)])


def door_serve(bundle: str, pngs: list[Path], port: int) -> dict[str, dict[str, Any]]:
    """One server for every file: the tree's peak after each request (VmHWM only grows, so
    each row is the peak so far; files go smallest-first)."""
    proc = subprocess.Popen([sys.executable, "-m", "sdk", "serve", "--bundle", bundle, "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_DISABLE_USAGE_STATS": "1"})
    peak = TreePeak(proc.pid)
    url = f"http://127.0.0.1:{port}"
    rows: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sdk serve did not come up: {proc.stderr.read()[-1000:] if proc.poll() else ''}")
            time.sleep(0.5)
        for png in pngs:
            req = urllib.request.Request(f"{url}/synthesize", data=png.read_bytes(),
                                         headers={"Content-Type": "image/png"})
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=300) as r:
                    status, said = r.status, ""
            except urllib.error.HTTPError as e:
                status, said = e.code, e.read().decode().strip()
            ms = (time.perf_counter() - start) * 1e3
            time.sleep(0.2)
            snap = max(peak.peaks.values(), key=lambda v: v[0])
            rows[png.stem] = {"peak_mb": round(snap[0], 1), "process": snap[1], "returncode": status,
                              "said": said[:160], "ms": round(ms, 1)}
    finally:
        proc.send_signal(2)
        try:
            proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
        peak.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default="demo/spade-street", help="bundle folder (relative to the checkout)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / f"door-memory-{date.today()}"))
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--doors", nargs="+", default=["python", "cli", "batch", "serve", "app"])
    args = p.parse_args(argv)
    out = Path(args.out)
    tmp = out / "work"
    pngs = [huge_png(tmp / f"{name}.png", h, w, kind) for name, (h, w, kind) in FILES.items()]
    for png in pngs:
        print(f"{png.name}: {png.stat().st_size / 1024:.0f} KB on disk", flush=True)
    doors = {"python": door_python, "cli": door_cli, "batch": door_batch, "app": door_app}
    results: dict[str, dict[str, Any]] = {}
    for door in args.doors:
        if door == "serve":
            results["serve"] = door_serve(args.bundle, pngs, args.port)
        else:
            results[door] = {png.stem: doors[door](args.bundle, png, tmp) for png in pngs}
        for name, row in results[door].items():
            print(f"{door:7} {name:18} {row['peak_mb']:8.1f} MB  rc {row['returncode']}  {row['said'][:90]}",
                  flush=True)
    worst = max(row["peak_mb"] for rows in results.values() for row in rows.values())
    summary = {"date": str(date.today()), "bundle": args.bundle, "target_mb": TARGET_MB, "worst_mb": worst,
               "met": worst <= TARGET_MB, "files": {n: {"hw": list(v[:2]), "kind": v[2]} for n, v in FILES.items()},
               "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# Peak RSS per door, small files of huge dimensions ({date.today()})", "",
             f"`python benchmarks/door_memory.py --bundle {args.bundle}`; the largest process of each door's "
             f"process tree (VmHWM). Target <= {TARGET_MB:.0f} MB: {'met' if worst <= TARGET_MB else 'NOT met'} "
             f"(worst {worst:.0f} MB).", "",
             "| file | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]
    for png in pngs:
        lines.append(f"| {png.stem} ({png.stat().st_size // 1024} KB) | "
                     + " | ".join(f"{results[d][png.stem]['peak_mb']:.0f} MB"
                                  + (" (refused)" if results[d][png.stem]["returncode"] not in (0, 200) else "")
                                  for d in results) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(tmp, ignore_errors=True)  # the work files: regenerated by the next run
    return 0 if worst <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
