"""``[gateway] workers`` and ``--workers``: how many worker processes serve the listeners."""

from __future__ import annotations

import os

#: the most worker processes a gateway starts (a typo such as 400 would exhaust memory)
MAX_WORKERS = 256


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and
    ``taskset`` narrow), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_workers(value: str, where: str) -> int:
    """``N`` (1 to MAX_WORKERS) or ``auto`` (one per core) -> the number of workers."""
    from sipgateway.config.values import ConfigError

    text = value.strip().lower()
    if text == "auto":
        return min(cores(), MAX_WORKERS)
    try:
        n = int(text)
    except ValueError:
        raise ConfigError(f"{where}={value!r} must be a whole number of worker processes or auto "
                          "(one per core)") from None
    if not 1 <= n <= MAX_WORKERS:
        raise ConfigError(f"{where}={value!r} must be between 1 and {MAX_WORKERS} (or auto)")
    return n
