"""What a timing needs to be read: the machine it ran on, and latency percentiles.

Used by the analyses (sweeps) and the benchmarks alike, so neither imports the other.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import torch

from lirlab.cpu import cpu_flags
from lirlab.int8_products import int8_route

#: The instruction-set flags (as ``/proc/cpuinfo`` and ``lscpu`` name them) that CPU speed depends on:
#: torch's kernels and numba's int8 dot products choose their route by them.
SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "asimddp",
    "sve",
)


def describe_machine(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Processor and its vector instruction sets, cores, memory, device and library versions: what a
    figure needs to be read. ``int8_route`` is the int8 route this process's first passes take
    (:func:`lirlab.int8_products.int8_route`; ``None``: float32 only)."""
    import transformers

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_flags": _cpu_flags(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "int8_route": int8_route(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(device),
    }
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(
            gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda
        )
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_flags() -> list[str]:
    """The :data:`SIMD_FLAGS` this CPU has, sorted (empty where ``/proc/cpuinfo`` cannot be read)."""
    return sorted(cpu_flags() & set(SIMD_FLAGS))


def percentiles(seconds: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99 and mean of a list of durations, in milliseconds.

    >>> percentiles([0.001, 0.002, 0.003])["p50_ms"]
    2.0
    """
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }
