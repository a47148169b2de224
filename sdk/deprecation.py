"""Old names kept for one version: each use warns, pointing at the caller's line.

The warning is a :class:`DeprecationWarning` attributed to the first frame outside this
package (by module name, so code the package generates, such as a dataclass's
``__init__``, counts as its own): Python shows it for code run as a script, test runners
show it too, and it names the user's call rather than the SDK's line that noticed it. The
CLI says the same in a one-line notice (:func:`sdk.notices.notice`) instead.
"""
from __future__ import annotations

import sys
import warnings
from types import FrameType


def deprecated(message: str) -> None:
    """Warn that an old name was used: ``message`` names it, its replacement and when it goes."""
    frame, level = sys._getframe(1), 2
    while frame is not None and _ours(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


def _ours(frame: FrameType) -> bool:
    """A frame of this package's code, or of code it generated."""
    return str(frame.f_globals.get("__name__", "")).partition(".")[0] == "sdk"


__all__ = ["deprecated"]
