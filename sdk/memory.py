"""How much memory this process holds and the machine has free (Linux /proc; elsewhere
unknown), and the batch size that fits."""
from __future__ import annotations

import os


def process_bytes() -> int | None:
    """Resident set size of this process, or None where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def available_bytes() -> int | None:
    """Memory the machine can give without swapping (``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fitting_batch(per_image: int, cap: int, share: float = 0.5) -> int:
    """Images per batch that fit in ``share`` of the free memory, between 1 and ``cap``."""
    free = available_bytes()
    if free is None:
        return 1
    return max(1, min(cap, int(free * share // max(per_image, 1))))
