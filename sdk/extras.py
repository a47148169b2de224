"""Optional extras: a missing one is a one-line error naming the install command."""
from __future__ import annotations

import importlib.util

from .errors import SDKError

_EXTRA = {"ray": "scale", "gradio": "app"}


def require(module: str, command: str) -> None:
    """Raise a one-line :class:`SDKError` when ``module`` (an optional dependency) is missing."""
    if importlib.util.find_spec(module) is None:
        extra = _EXTRA.get(module, module)
        raise SDKError(f"`python -m sdk {command}` needs {module}, which is not installed: "
                       f"pip install \"sdk[{extra}]\" (or pip install -e \".[{extra}]\" in a checkout)")


__all__ = ["require"]
