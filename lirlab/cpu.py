"""The CPU's instruction-set flags, read once: every route lirlab picks by processor starts here."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The flags ``/proc/cpuinfo`` lists (``flags`` on x86, ``Features`` on Arm); empty where it cannot
    be read (then no route that needs a flag is taken)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()
