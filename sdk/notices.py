"""One-line notices to the user (fallbacks, resized inputs, random weights).

They go through the ``sdk`` logger at WARNING level: with no logging configured, Python
prints the message alone on stderr; apps silence or route them with ``logging``. Each
distinct message is printed once per process.
"""
from __future__ import annotations

import logging

_logger = logging.getLogger("sdk")
_seen: set[str] = set()


def notice(message: str) -> None:
    """Print ``sdk: message`` once (one line, stderr by default)."""
    if message not in _seen:
        _seen.add(message)
        _logger.warning("sdk: %s", message)


__all__ = ["notice"]
