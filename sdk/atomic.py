"""Atomic file and folder writes: a reader sees the old content or the new, never half."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import SDKError


def default_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~default_umask())  # mkstemp makes 0600; give the usual file mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def check_writable(path: str | Path, what: str = "--out", *, folder: bool = False) -> Path:
    """Check, before any work, that ``path`` (a file, or with ``folder`` a folder) can be
    written: the nearest existing folder above it takes a new file, and nothing on the way
    is a regular file. Raises a one-line :class:`~sdk.errors.SDKError` naming the fix."""
    path = Path(path)
    if not folder and path.is_dir():
        raise SDKError(f"{what} {path} is a folder; give a file path such as {path / 'out.png'}")
    if folder and path.exists() and not path.is_dir():
        raise SDKError(f"{what} {path} is a file, not a folder; give a folder path")
    parent = path if folder else path.parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise SDKError(f"{what} {path} lies under {existing}, which is a file, not a folder; give another path")
    try:  # the one reliable test: os.access says yes to root on a read-only file system
        fd, probe = tempfile.mkstemp(prefix=".sdk-write-check.", dir=existing)
    except OSError as exc:
        raise SDKError(f"{what} {path}: cannot write in {existing} ({exc.strerror or type(exc).__name__}); "
                       f"give a folder you can write to") from None
    os.close(fd)
    os.unlink(probe)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a folder in a temporary sibling and swap it in place of ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~default_umask())
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["atomic_dir", "atomic_path", "check_writable", "default_umask", "write_bytes_atomic"]
