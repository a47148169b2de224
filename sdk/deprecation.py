"""Old names kept for one version: each use warns once, pointing at the caller's line.

The warning is a :class:`DeprecationWarning` attributed to the first frame outside this
package (Python shows it for code run as a script; test runners show it too), so it names
the user's call rather than the SDK's own line that noticed it. The CLI says the same in a
one-line notice (:func:`sdk.notices.notice`) instead.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


def deprecated(message: str) -> None:
    """Warn that an old name was used: ``message`` names it, its replacement and when it goes."""
    frame, level = sys._getframe(1), 2
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


__all__ = ["deprecated"]
