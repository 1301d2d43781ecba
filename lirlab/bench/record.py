"""Describe the machine and save benchmark results (JSON, plus CSV for tables)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch


def describe_machine(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Processor, cores, memory, device and library versions: what a figure needs to be read."""
    import transformers

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
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


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux ``ru_maxrss``)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cached_flat_index(dataset, encoder, cache_dir: str | os.PathLike | None, batch_size: int = 32):
    """Exhaustive index of ``dataset``'s documents, encoded once per model and kept in ``cache_dir``.

    Benchmarks that do not time document encoding reuse the vectors a previous run encoded (the
    cache is checked against the model's description and the document ids, and rebuilt otherwise).
    ``cache_dir=None`` always encodes.
    """
    from lirlab.index.flat import FlatIndex

    docs = list(dataset.docs)
    folder = Path(cache_dir, f"{dataset.name}-flat") if cache_dir is not None else None
    if folder is not None and (folder / "metadata.json").is_file():
        cached = FlatIndex.load(folder, encoder=encoder)
        if cached.model == encoder.describe() and list(cached.docnos) == [d.docno for d in docs]:
            return cached
    index = FlatIndex.build(docs, encoder, batch_size=batch_size)
    if folder is not None:
        index.save(folder)
    return index


def save_results(name: str, results: dict[str, Any], out_dir: str | os.PathLike, device="cpu") -> Path:
    """Write ``<out_dir>/<name>.json`` with the machine description; tables (lists of dicts) also as CSV."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": describe_machine(device),
    }
    payload.update(results)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    for key, value in results.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            pd.DataFrame(value).to_csv(out / f"{name}.{key}.csv", index=False)
    return path
