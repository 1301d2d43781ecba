"""What PLAID's knobs cost and buy: latency against quality, one row per setting.

A sweep searches the same queries under every combination of the knob values it is given and
records, for each setting, the resolved knobs, the per-query latency (total and per stage, warm-up
runs excluded), the quality against relevance judgments when there are some, and the *recall of the
exhaustive top-k*: the share of exact MaxSim's top ``k`` that the setting also returns. Search knobs
(:data:`~lirlab.index.plaid.SEARCH_PARAMS`) reuse one index; build knobs
(:data:`~lirlab.index.plaid.BUILD_PARAMS`, e.g. ``nbits``) build one index per value from the same
encoded documents.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> g = torch.Generator().manual_seed(0)
>>> docs = Encoding(
...     ids=tuple(f"d{i}" for i in range(30)),
...     vectors=torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1),
...     token_ids=torch.zeros(300, dtype=torch.long),
...     offsets=offsets_from_lengths(torch.full((30,), 10)),
...     vocab=("tok",),
... )
>>> queries = docs.select([3, 8])
>>> index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=16)
>>> grid = {"n_probe": [1, 16], "centroid_score_threshold": -1.0}
>>> table = sweep(index, queries, grid, k=5, progress=False)
>>> table.setting.tolist()
['n_probe=1', 'n_probe=16']

Every centroid probed and nothing pruned, PLAID finds exact MaxSim's top-5 over the same
(decompressed) vectors:

>>> float(table["exhaustive_recall@5"].iloc[1])
1.0
>>> pareto_front(table, "p50_ms", "exhaustive_recall@5").dtype
dtype('bool')
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lirlab.bench.record import describe_machine, percentiles
from lirlab.data import Dataset
from lirlab.encoding import Encoding
from lirlab.evaluate import evaluate
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import BUILD_PARAMS, SEARCH_PARAMS, STAGES, PlaidIndex, resolve_search_params

#: Queries searched before timing starts (their times are discarded).
WARMUP = 5

#: Latency percentiles reported per stage by :func:`sweep`.
STAGE_PERCENTILES = ("p50", "p90")


def top_overlap(run: pd.DataFrame, reference: pd.DataFrame, k: int = 10) -> float:
    """Mean share of each query's reference top-``k`` that ``run``'s top-``k`` also holds.

    Queries of ``reference`` absent from ``run`` count as 0.

    >>> reference = pd.DataFrame({"qid": ["1"] * 4, "docno": list("abcd"), "rank": [1, 2, 3, 4]})
    >>> run = pd.DataFrame({"qid": ["1"] * 4, "docno": list("axcy"), "rank": [1, 2, 3, 4]})
    >>> top_overlap(run, reference, k=4)
    0.5
    """
    ours = run[run["rank"] <= k].groupby("qid").docno.apply(set)
    theirs = reference[reference["rank"] <= k].groupby("qid").docno.apply(set)
    return float(np.mean([len(ours.get(q, set()) & docs) / len(docs) for q, docs in theirs.items()]))


def timed_search(
    index: PlaidIndex,
    queries: Encoding,
    k: int = 10,
    *,
    warmup: int = WARMUP,
    stage_percentiles: Sequence[str] = ("p50",),
    **knobs,
) -> dict:
    """Search queries one at a time (after ``warmup`` untimed ones): total and per-stage latency.

    Returns ``queries`` (how many were timed), ``p50_ms``, ``p90_ms``, ``p99_ms``, ``mean_ms`` of the
    whole search, and ``<stage>_<percentile>_ms`` for every stage of
    :data:`~lirlab.index.plaid.STAGES` and every entry of ``stage_percentiles``.
    """
    for i in range(min(warmup, len(queries))):
        index.search_encoded(queries.select([i]), k=k, **knobs)
    totals, stages = [], []
    for i in range(len(queries)):
        one = queries.select([i])
        stage_times: list[dict] = []
        start = time.perf_counter()
        index.search_encoded(one, k=k, timings=stage_times, **knobs)
        totals.append(time.perf_counter() - start)
        stages.append(stage_times[0])
    row = {"queries": len(queries), **percentiles(totals)}
    for stage in STAGES:
        stage_ms = percentiles([s.get(stage, 0.0) for s in stages])
        for name in stage_percentiles:
            row[f"{stage}_{name}_ms"] = stage_ms[f"{name}_ms"]
    return row


def validate_grid(grid: Mapping[str, Any]) -> tuple[dict[str, list], dict[str, list]]:
    """Split a knob grid into (search knobs, build knobs), each value checked against its declaration.

    A single value stands for a one-element list; ``None`` for a search knob means "ColBERTv2's
    default for ``k``".

    >>> validate_grid({"n_probe": [1, 4], "nbits": 2})
    ({'n_probe': [1, 4]}, {'nbits': [2]})
    >>> validate_grid({"nprobe": [1]})
    Traceback (most recent call last):
    ...
    ValueError: unknown knob 'nprobe' in the grid; known: n_probe, centroid_score_threshold, ndocs, nbits, n_centroids, kmeans_iterations, kmeans_sample, seed
    >>> validate_grid({"nbits": [2, 3]})
    Traceback (most recent call last):
    ...
    ValueError: nbits must be one of [1, 2, 4], got 3
    """
    if not isinstance(grid, Mapping):
        raise ValueError(f"the grid must map knob names to lists of values, got {type(grid).__name__}")
    declared = {**SEARCH_PARAMS, **BUILD_PARAMS}
    search: dict[str, list] = {}
    build: dict[str, list] = {}
    for name, values in grid.items():
        if name not in declared:
            raise ValueError(f"unknown knob {name!r} in the grid; known: {', '.join(declared)}")
        values = [values] if isinstance(values, str) or not isinstance(values, Iterable) else list(values)
        if not values:
            raise ValueError(f"the grid gives no value for {name!r}")
        checked = [declared[name].validate(v.item() if isinstance(v, np.generic) else v) for v in values]
        if name in BUILD_PARAMS and None in checked:
            raise ValueError(f"{name} must be given a value in the grid (None is only for search knobs)")
        (search if name in SEARCH_PARAMS else build)[name] = checked
    return search, build


def judged(qrels: pd.DataFrame | Dataset | None, qids: Sequence[str]) -> pd.DataFrame | None:
    """The judgments of the queries ``qids`` (``None`` stays ``None``).

    >>> qrels = pd.DataFrame({"query_id": ["1", "2"], "doc_id": ["a", "b"], "relevance": [1, 1]})
    >>> judged(qrels, ["2"]).doc_id.tolist()
    ['b']
    """
    if qrels is None:
        return None
    if isinstance(qrels, Dataset):
        qrels = qrels.qrels
    if not isinstance(qrels, pd.DataFrame) or "query_id" not in qrels.columns:
        raise ValueError("qrels must be a Dataset or a DataFrame with query_id, doc_id, relevance columns")
    return qrels[qrels.query_id.astype(str).isin(set(qids))]


def check_queries(queries: Encoding) -> None:
    """Raise ``ValueError`` unless ``queries`` is a non-empty :class:`Encoding`."""
    if not isinstance(queries, Encoding):
        raise ValueError(f"queries must be an encoded Encoding, got {type(queries).__name__}")
    if len(queries) == 0:
        raise ValueError("no queries to search")


def exhaustive_reference(docs: Encoding | PlaidIndex, queries: Encoding, k: int = 10) -> pd.DataFrame:
    """Exact MaxSim's top-``k`` run: over ``docs`` when they are an Encoding, or over the decompressed
    vectors of a :class:`PlaidIndex` (its live documents), which isolates the search's approximation
    from the compression's."""
    check_queries(queries)
    if isinstance(docs, PlaidIndex):
        docs = docs.reconstruct()
    elif not isinstance(docs, Encoding):
        raise ValueError(f"docs must be an Encoding or a PlaidIndex, got {type(docs).__name__}")
    return FlatIndex(docs).search(queries, k=k)


def measure_setting(
    index: PlaidIndex,
    queries: Encoding,
    *,
    k: int = 10,
    reference: pd.DataFrame | None = None,
    qrels: pd.DataFrame | Dataset | None = None,
    measure: str = "nDCG@10",
    warmup: int = WARMUP,
    n_timed: int | None = None,
    **knobs,
) -> dict[str, Any]:
    """One row of a sweep: the resolved knobs, latency and quality of one search setting.

    Parameters
    ----------
    index : PlaidIndex
        Searched on its own device.
    queries : Encoding
        Every query counts for quality; the first ``n_timed`` (default all) are timed one at a time.
    reference : DataFrame, optional
        Exhaustive top-``k`` run (:func:`exhaustive_reference`); computed over the index's decompressed
        vectors when omitted.
    qrels : DataFrame or Dataset, optional
        Judgments; the row then holds ``measure`` (e.g. ``nDCG@10``).
    **knobs
        Search knobs (:data:`~lirlab.index.plaid.SEARCH_PARAMS`); unset ones follow the defaults for ``k``.

    Returns
    -------
    dict
        ``device, nbits, n_centroids, n_probe, centroid_score_threshold, ndocs``, the latency columns of
        :func:`timed_search` (stage percentiles :data:`STAGE_PERCENTILES`), ``measure`` when judged,
        and ``exhaustive_recall@k``.
    """
    check_queries(queries)
    settings = resolve_search_params(k, **knobs)
    if n_timed is not None and (isinstance(n_timed, bool) or not isinstance(n_timed, int) or n_timed < 1):
        raise ValueError(f"n_timed must be a positive whole number or None, got {n_timed!r}")
    if reference is None:
        reference = exhaustive_reference(index, queries, k)
    timed = queries if n_timed is None else queries.select(range(min(n_timed, len(queries))))
    row: dict[str, Any] = {
        "device": str(index.device),
        "nbits": index.nbits,
        "n_centroids": index.n_centroids,
        **settings,
    }
    row.update(
        timed_search(index, timed, k=k, warmup=warmup, stage_percentiles=STAGE_PERCENTILES, **settings)
    )
    run = index.search(queries, k=k, **settings)
    judgments = judged(qrels, queries.ids)
    if judgments is not None:
        row[measure] = float(evaluate(run, judgments, [measure]).value.iloc[0])
    row[f"exhaustive_recall@{k}"] = top_overlap(run, reference, k)
    return row


def on_device(index: PlaidIndex, device: str | torch.device) -> PlaidIndex:
    """The same index searched on ``device`` (the arrays are copied there; ``index`` is unchanged)."""
    device = torch.device(device)
    if index.device == device:
        return index
    return PlaidIndex(
        index.codec,
        index.codes,
        index.residuals,
        index.token_ids,
        index.doc_offsets,
        index.docnos,
        index.vocab,
        mask_token_id=index.mask_token_id,
        deleted=index.deleted,
        ivf=(index.ivf_positions, index.ivf_offsets),
        encoder=index.encoder,
        model=index.model,
        config=index.config,
        stats=index.stats,
        device=device,
        query_batch=index.query_batch,
    )


def available_devices(devices: Sequence[str]) -> list[str]:
    """The requested devices this machine has; CUDA ones are skipped with a warning when absent.

    >>> available_devices(["cpu"])
    ['cpu']
    """
    if isinstance(devices, str):
        devices = [devices]
    kept = []
    for name in devices:
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError):
            raise ValueError(f"unknown device {name!r}; use 'cpu' or 'cuda'") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"unsupported device {name!r}; use 'cpu' or 'cuda'")
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(f"CUDA is not available on this machine: skipping device {name!r}", stacklevel=3)
            continue
        kept.append(str(device))
    if not kept:
        raise ValueError(f"none of the devices {list(devices)} is available")
    return kept


def _device_name(machine: Mapping[str, Any]) -> str:
    return str(machine.get("gpu") or machine.get("processor") or machine["device"])


def sweep(
    docs: Encoding | PlaidIndex,
    queries: Encoding,
    grid: Mapping[str, Any],
    *,
    qrels: pd.DataFrame | Dataset | None = None,
    k: int = 10,
    build: Mapping[str, Any] | None = None,
    devices: Sequence[str] = ("cpu",),
    reference: pd.DataFrame | None = None,
    measure: str = "nDCG@10",
    warmup: int = WARMUP,
    n_timed: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Search ``queries`` under every combination of the ``grid``'s knob values, on every device.

    Parameters
    ----------
    docs : Encoding or PlaidIndex
        Encoded documents (an index is built for each combination of build knobs, with ``build`` for
        the rest), or a ready index (then the grid may hold search knobs only).
    queries : Encoding
        Encoded queries; all count for quality, the first ``n_timed`` (default all) are timed.
    grid : mapping
        Knob name → list of values, e.g. ``{"n_probe": [1, 2, 4], "nbits": [1, 2, 4]}``; names and
        values are checked against :data:`~lirlab.index.plaid.SEARCH_PARAMS` and
        :data:`~lirlab.index.plaid.BUILD_PARAMS`.
    qrels : DataFrame or Dataset, optional
        Judgments, for the ``measure`` column.
    build : mapping, optional
        Fixed build knobs (``n_centroids``, ``seed``...) for indexes built from ``docs``.
    devices : sequence of str
        ``"cpu"`` and/or ``"cuda"``; CUDA is skipped with a warning on a machine without it.
    reference : DataFrame, optional
        The exhaustive top-``k`` run that ``exhaustive_recall@k`` compares with; by default exact
        MaxSim over ``docs`` (the uncompressed vectors), or over the index's decompressed vectors when
        ``docs`` is an index.

    Returns
    -------
    DataFrame
        One row per (build setting, device, search setting), with the columns of
        :func:`measure_setting`, any swept build knob, ``device_name`` and ``setting`` (a label of the
        knobs that vary). ``attrs["machines"]`` describes the machine per device
        (:func:`lirlab.bench.record.describe_machine`).
    """
    check_queries(queries)
    search_grid, build_grid = validate_grid(grid)
    fixed_build = dict(build or {})
    overlap = set(fixed_build) & set(build_grid)
    if overlap:
        raise ValueError(f"{sorted(overlap)[0]!r} is both swept and fixed in build=")
    if isinstance(docs, PlaidIndex):
        if build_grid or fixed_build:
            raise ValueError(
                f"sweeping or setting build knobs ({', '.join([*build_grid, *fixed_build])}) needs the encoded "
                "documents: pass an Encoding instead of an index"
            )
    elif isinstance(docs, Encoding):
        unknown = set(fixed_build) - set(BUILD_PARAMS)
        if unknown:
            raise ValueError(f"unknown build knob {sorted(unknown)[0]!r}; known: {', '.join(BUILD_PARAMS)}")
    else:
        raise ValueError(f"docs must be an Encoding or a PlaidIndex, got {type(docs).__name__}")
    resolve_search_params(k)  # checks k before any index is built
    devices = available_devices(devices)
    if reference is None:
        reference = exhaustive_reference(docs, queries, k)

    build_settings = [dict(zip(build_grid, values)) for values in itertools.product(*build_grid.values())]
    search_settings = [dict(zip(search_grid, values)) for values in itertools.product(*search_grid.values())]
    machines = {device: describe_machine(device) for device in devices}
    rows = []
    bar = tqdm(
        total=len(build_settings) * len(devices) * len(search_settings),
        desc="sweep",
        unit="setting",
        disable=not progress,
    )
    for build_setting in build_settings:
        if isinstance(docs, PlaidIndex):
            built = docs
        else:
            built = PlaidIndex.from_encoding(docs, **{**fixed_build, **build_setting})
        for device in devices:
            index = on_device(built, device)
            for search_setting in search_settings:
                row = measure_setting(
                    index,
                    queries,
                    k=k,
                    reference=reference,
                    qrels=qrels,
                    measure=measure,
                    warmup=warmup,
                    n_timed=n_timed,
                    **search_setting,
                )
                row.update(build_setting)
                row["device_name"] = _device_name(machines[device])
                rows.append(row)
                bar.update()
    bar.close()
    table = pd.DataFrame(rows)
    table["setting"] = setting_labels(table)
    table.attrs["machines"] = machines
    return table


def setting_labels(table: pd.DataFrame, knobs: Sequence[str] | None = None) -> pd.Series:
    """A short label per row naming its knob values, e.g. ``"n_probe=4, ndocs=256"``.

    By default the label holds the declared knobs (and ``device``) whose value varies across the table,
    or every search knob present when none varies.

    >>> table = pd.DataFrame({"n_probe": [1, 4], "ndocs": [256, 256], "centroid_score_threshold": [0.5, 0.5]})
    >>> setting_labels(table).tolist()
    ['n_probe=1', 'n_probe=4']
    """
    if knobs is None:
        candidates = [name for name in ("device", *SEARCH_PARAMS, *BUILD_PARAMS) if name in table.columns]
        knobs = [name for name in candidates if table[name].nunique(dropna=False) > 1]
        if not knobs:
            knobs = [name for name in SEARCH_PARAMS if name in table.columns]
    missing = [name for name in knobs if name not in table.columns]
    if missing:
        raise ValueError(f"the table has no column {missing[0]!r}")

    def label(row: pd.Series) -> str:
        return ", ".join(f"{name}={_format(row[name])}" for name in knobs)

    return table.apply(label, axis=1).astype(object) if len(table) else pd.Series([], dtype=object)


def _format(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def pareto_front(
    table: pd.DataFrame, latency: str = "p50_ms", quality: str = "nDCG@10", by: str | None = None
) -> pd.Series:
    """Which rows no other row beats: none is at least as fast and as good, and strictly better in one.

    Parameters
    ----------
    latency, quality : str
        Columns to minimize and maximize.
    by : str, optional
        Column whose groups (e.g. ``"device"``) get a frontier each.

    Returns
    -------
    Series of bool
        Aligned with ``table``'s index; rows with a missing value are never on the frontier.

    >>> table = pd.DataFrame({"p50_ms": [1.0, 2.0, 3.0, 2.5], "nDCG@10": [0.5, 0.7, 0.8, 0.6]})
    >>> pareto_front(table).tolist()
    [True, True, True, False]
    """
    for column in (latency, quality, *([by] if by else [])):
        if column not in table.columns:
            raise ValueError(
                f"the table has no column {column!r}; it has {', '.join(map(str, table.columns))}"
            )
    front = pd.Series(False, index=table.index, dtype=bool)
    groups = table.groupby(by, sort=False).groups.values() if by else [table.index]
    for rows in groups:
        values = table.loc[rows, [latency, quality]].astype(float).dropna()
        fast, good = values[latency].to_numpy(), values[quality].to_numpy()
        no_worse = (fast[None, :] <= fast[:, None]) & (good[None, :] >= good[:, None])
        better = (fast[None, :] < fast[:, None]) | (good[None, :] > good[:, None])
        dominated = (no_worse & better).any(axis=1)
        front.loc[values.index[~dominated]] = True
    return front
