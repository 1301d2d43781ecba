"""Save benchmark results (JSON, plus CSV for tables) with the machine described (:mod:`lirlab.machine`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from lirlab.machine import describe_machine, percentiles  # noqa: F401  (re-exported for benchmarks)

#: Default datasets of the benchmarks: the workplace's copies beside this checkout (``../shared/data`` seen
#: from the repository root; pass ``--datasets`` elsewhere).
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages now (what else the machine was running), rounded to 0.01, or
    None where the platform has none (Windows)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


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
    from lirlab.index.base import encoder_fingerprint, fingerprints_match
    from lirlab.index.flat import FlatIndex

    docs = list(dataset.docs)
    folder = Path(cache_dir, f"{dataset.name}-flat") if cache_dir is not None else None
    if folder is not None and (folder / "metadata.json").is_file():
        cached = FlatIndex.load(folder, encoder=encoder)
        settings = {k: v for k, v in cached.model.items() if k != "fingerprint"}
        stored, current = cached.model.get("fingerprint"), encoder_fingerprint(encoder)
        same_model = settings == encoder.describe() and (
            stored is not None and current is not None and fingerprints_match(stored, current)
        )
        if same_model and list(cached.docnos) == [d.docno for d in docs]:
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
