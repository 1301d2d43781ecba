"""What each method's knobs cost and buy: latency against quality, one row per setting.

A sweep searches the same queries with one or more *methods* — index kinds under the retriever
protocol (:mod:`lirlab.index.base`), each with a grid of knob values — and records, for every setting,
the method, its knobs, what the index costs (bytes per vector, size, build seconds), the per-query
latency (total and per stage, warm-up runs excluded, query encoding excluded), the quality against
relevance judgments when there are some, and the *recall of the exhaustive top-k*: the share of exact
MaxSim's top ``k`` that the setting also returns. Search knobs reuse one index; build knobs build one
index per value from the same encoded documents (``from_encoding``). Rows on the latency/quality Pareto
frontier are marked in ``on_front``; :func:`frontier` gives the frontier of any other pair of columns.

Latency is noisy on a shared machine: load only ever adds time, so a sweep times every query in
:data:`ROUNDS` rounds and keeps each query's fastest; ``p50_ms`` is the median of those over the queries and
``p10_ms``/``p90_ms`` their spread.

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
>>> methods = [("flat", {}), ("plaid", {"n_probe": [1, 16], "centroid_score_threshold": -1.0})]
>>> table = sweep(docs, queries, methods=methods, k=5, build={"n_centroids": 16}, progress=False)
>>> table[["method", "setting"]].values.tolist()
[['flat', 'method=flat'], ['plaid', 'method=plaid, n_probe=1'], ['plaid', 'method=plaid, n_probe=16']]

Exhaustive search finds exact MaxSim's top-5 by definition; PLAID, compressed, keeps part of it:

>>> recall = table["exhaustive_recall@5"].tolist()
>>> recall[0], recall[1] <= recall[2] < 1.0
(1.0, True)
>>> table.on_front.dtype
dtype('bool')
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lirlab.data import Dataset
from lirlab.encoding import Encoding
from lirlab.evaluate import evaluate, judged, parse_measures, top_overlap
from lirlab.index import registry
from lirlab.index.base import K_PARAM, Index, UnknownKnobError, index_kind
from lirlab.index.flat import FlatIndex
from lirlab.machine import describe_machine, percentiles
from lirlab.notices import LirlabWarning
from lirlab.params import Param

#: Queries searched before timing starts (their times are discarded).
WARMUP = 5

#: Queries timed per setting (``None``: all of them).
N_TIMED = Param("n_timed", int, None, "Queries timed one at a time per setting (default: all).", low=1)

#: Torch threads a sweep times with (``None``: as set).
THREADS = Param("threads", int, None, "Torch threads to time with.", low=1, high=1024)

#: Rounds a sweep times every query in (each query keeps its fastest round).
ROUNDS = Param("rounds", int, 3, "Rounds every timed query is searched in; each keeps its fastest.", low=1)

#: Latency percentiles reported per stage by :func:`sweep`.
STAGE_PERCENTILES = ("p10", "p50", "p90")

#: The kind an Encoding is indexed with when :func:`sweep` is given a grid and no ``methods``.
DEFAULT_KIND = "plaid"


def timed_search(
    index: Index,
    queries: Encoding,
    k: int = 10,
    *,
    warmup: int = WARMUP,
    rounds: int = 1,
    stage_percentiles: Sequence[str] = ("p50",),
    **knobs,
) -> dict:
    """Search queries one at a time (after ``warmup`` untimed ones): total and per-stage latency.

    With ``rounds`` > 1 every query is searched once per round, the rounds one after another (so a
    burst of load on the machine hits one round, not all), and each query keeps its fastest round:
    load only ever adds time. Its stage times come from that same round.

    Returns ``queries`` (how many were timed), ``rounds``, ``p10_ms``, ``p50_ms``, ``p90_ms``,
    ``p99_ms``, ``mean_ms`` of the whole search over the queries, and ``<stage>_<percentile>_ms`` for
    every stage of the index's ``STAGES`` and every entry of ``stage_percentiles`` (``"p10"``,
    ``"p50"``...).
    """
    rounds = ROUNDS.validate(rounds)
    for i in range(min(warmup, len(queries))):
        index.search_encoded(queries.select([i]), k=k, **knobs)
    timed = [_time_queries(index, queries, k, knobs) for _ in range(rounds)]
    return _latency_row(index, timed, stage_percentiles)


def _time_queries(index: Index, queries: Encoding, k: int, knobs: Mapping[str, Any]) -> tuple:
    """One round: each query searched once, alone; its seconds and its stage timings."""
    totals, stages = np.empty(len(queries)), []
    for i in range(len(queries)):
        one = queries.select([i])
        stage_times: list[dict] = []
        start = time.perf_counter()
        index.search_encoded(one, k=k, timings=stage_times, **knobs)
        totals[i] = time.perf_counter() - start
        stages.append(stage_times[0])
    return totals, stages


def _latency_row(index: Index, timed: Sequence[tuple], stage_percentiles: Sequence[str]) -> dict:
    """The latency columns of rounds of :func:`_time_queries`: each query's fastest round."""
    totals = np.stack([t for t, _ in timed])
    fastest = totals.argmin(axis=0)
    best = totals[fastest, np.arange(totals.shape[1])]
    row = {
        "queries": totals.shape[1],
        "rounds": len(timed),
        "p10_ms": _percentile_ms(best, "p10"),
        **percentiles(best),
    }
    kept = [timed[r][1][i] for i, r in enumerate(fastest)]
    for stage in index.STAGES:
        stage_seconds = [s.get(stage, 0.0) for s in kept]
        for name in stage_percentiles:
            row[f"{stage}_{name}_ms"] = _percentile_ms(stage_seconds, name)
    return row


def _percentile_ms(seconds: Sequence[float] | np.ndarray, name: str) -> float:
    """The percentile ``name`` (``"p10"``, ``"p50"``...) of durations in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(seconds, dtype=np.float64) * 1000, float(name.removeprefix("p"))))


def _values(name: str, values: Any) -> list:
    values = [values] if isinstance(values, str) or not isinstance(values, Iterable) else list(values)
    if not values:
        raise ValueError(f"the grid gives no value for {name!r}")
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def validate_grid(grid: Mapping[str, Any], kind: str | type[Index] = DEFAULT_KIND) -> tuple[dict, dict]:
    """Split a knob grid into (search knobs, build knobs) of one index kind, each value checked against
    its declaration.

    A single value stands for a one-element list; ``None`` for a search knob means "the kind's default
    for ``k``".

    >>> validate_grid({"n_probe": [1, 4], "nbits": 2})
    ({'n_probe': [1, 4]}, {'nbits': [2]})
    >>> validate_grid({"nprobe": [1]})
    Traceback (most recent call last):
    ...
    lirlab.index.base.UnknownKnobError: a plaid index takes n_probe, centroid_score_threshold, ndocs (search) and nbits, n_centroids, kmeans_iterations, kmeans_sample, kmeans_points_per_centroid, seed, centroid_dtype, pool_factor (build), got 'nprobe'
    >>> validate_grid({"nbits": [2, 3]})
    Traceback (most recent call last):
    ...
    ValueError: nbits must be one of [1, 2, 4], got 3
    """
    cls = index_kind(kind) if isinstance(kind, str) else kind
    if not isinstance(grid, Mapping):
        raise ValueError(f"the grid must map knob names to lists of values, got {type(grid).__name__}")
    search: dict[str, list] = {}
    build: dict[str, list] = {}
    for name, values in grid.items():
        if name in cls.SEARCH_PARAMS:
            search[name] = [cls.SEARCH_PARAMS[name].validate(v) for v in _values(name, values)]
        elif name in cls.BUILD_PARAMS:
            checked = [cls.BUILD_PARAMS[name].validate(v) for v in _values(name, values)]
            if None in checked:
                raise ValueError(f"{name} must be given a value in the grid (None is only for search knobs)")
            build[name] = checked
        else:
            raise UnknownKnobError(
                f"a {cls.KIND} index takes {', '.join(cls.SEARCH_PARAMS) or 'no'} (search) and "
                f"{', '.join(cls.BUILD_PARAMS) or 'no'} (build), got {name!r}"
            )
    return search, build


def check_queries(queries: Encoding) -> None:
    """Raise ``ValueError`` unless ``queries`` is a non-empty :class:`Encoding`."""
    if not isinstance(queries, Encoding):
        raise ValueError(f"queries must be an encoded Encoding, got {type(queries).__name__}")
    if len(queries) == 0:
        raise ValueError("no queries to search")


def exhaustive_reference(docs: Encoding | Index, queries: Encoding, k: int = 10) -> pd.DataFrame:
    """Exact MaxSim's top-``k`` run: over ``docs`` when they are an Encoding, or over the vectors an
    index returns from ``documents()`` (its live documents; the reconstruction for a compressed index),
    which isolates the search's approximation from the compression's."""
    check_queries(queries)
    if isinstance(docs, Index):
        docs = docs.documents()
    elif not isinstance(docs, Encoding):
        raise ValueError(f"docs must be an Encoding or an index, got {type(docs).__name__}")
    return FlatIndex(docs).search(queries, k=k)


def _measure_names(measures: str | Sequence[str]) -> list[str]:
    return [str(m) for m in parse_measures([measures] if isinstance(measures, str) else list(measures))]


def index_costs(index: Index) -> dict[str, Any]:
    """What an index costs: ``vectors``, ``size_bytes``, ``bytes_per_vector`` and the build knobs it
    reports (those of its ``BUILD_PARAMS`` in its :meth:`~lirlab.index.base.Index.settings`, or that it
    has as attributes)."""
    vectors, size = index.n_vectors(), index.size_bytes()
    built = {**{name: getattr(index, name, None) for name in index.BUILD_PARAMS}, **index.settings()}
    knobs = {
        name: built[name]
        for name in index.BUILD_PARAMS
        if isinstance(built.get(name), int | float | str | bool)
    }
    return {
        **knobs,
        "vectors": vectors,
        "size_bytes": size,
        "bytes_per_vector": size / vectors if vectors else 0.0,
    }


def measure_setting(
    index: Index,
    queries: Encoding,
    *,
    k: int = 10,
    reference: pd.DataFrame | None = None,
    qrels: pd.DataFrame | Dataset | None = None,
    measures: str | Sequence[str] = ("nDCG@10",),
    warmup: int = WARMUP,
    n_timed: int | None = None,
    rounds: int = ROUNDS.default,
    latency: Mapping[str, Any] | None = None,
    **knobs,
) -> dict[str, Any]:
    """One row of a sweep: the method, its resolved knobs, latency and quality of one search setting.

    Parameters
    ----------
    index : Index
        Any index kind, searched on its own device.
    queries : Encoding
        Every query counts for quality; the first ``n_timed`` (default all) are timed one at a time.
    reference : DataFrame, optional
        Exhaustive top-``k`` run (:func:`exhaustive_reference`); computed over the index's
        ``documents()`` when omitted.
    qrels : DataFrame or Dataset, optional
        Judgments; the row then holds each of ``measures`` (e.g. ``nDCG@10``).
    rounds : int
        Rounds each timed query is searched in; it keeps its fastest (:func:`timed_search`).
    latency : mapping, optional
        The setting's latency columns, already measured (a sweep times its settings' rounds
        interleaved); the setting is then not timed again.
    **knobs
        The index's search knobs; unset ones follow its defaults for ``k``.

    Returns
    -------
    dict
        ``method, device``, the knobs, :func:`index_costs`, the latency columns of :func:`timed_search`
        (stage percentiles :data:`STAGE_PERCENTILES`), the measures when judged, ``exhaustive_recall@k``.
    """
    check_queries(queries)
    settings = index.resolve_knobs(k, knobs)
    n_timed = N_TIMED.validate(n_timed)
    if reference is None:
        reference = exhaustive_reference(index, queries, k)
    timed = queries if n_timed is None else queries.select(range(min(n_timed, len(queries))))
    row: dict[str, Any] = {
        "method": index.KIND,
        "device": str(index.device),
        **index_costs(index),
        **settings,
    }
    if latency is None:
        latency = timed_search(
            index, timed, k=k, warmup=warmup, rounds=rounds, stage_percentiles=STAGE_PERCENTILES, **settings
        )
    row.update(latency)
    run = index.search(queries, k=k, **settings)
    judgments = judged(qrels, queries.ids)
    if judgments is not None:
        names = _measure_names(measures)
        values = evaluate(run, judgments, names).set_index("measure")["value"]
        row.update({name: float(values[name]) for name in names})
    row[f"exhaustive_recall@{k}"] = top_overlap(run, reference, k)
    return row


def available_devices(devices: Sequence[str] | None = None) -> list[str]:
    """The requested devices this machine has; CUDA ones are skipped with a warning when absent.
    ``None`` asks for every device the machine has: the CPU, and CUDA when there is a GPU.

    >>> available_devices(["cpu"])
    ['cpu']
    """
    if devices is None:
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
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
            warnings.warn(
                f"CUDA is not available on this machine: skipping device {name!r}",
                LirlabWarning,
                stacklevel=3,
            )
            continue
        kept.append(str(device))
    if not kept:
        raise ValueError(f"none of the devices {list(devices)} is available")
    return kept


def interleaved_latency(
    index: Index,
    queries: Encoding,
    settings: Sequence[Mapping[str, Any]],
    *,
    k: int = 10,
    warmup: int = WARMUP,
    n_timed: int | None = None,
    rounds: int = ROUNDS.default,
) -> list[dict]:
    """The latency columns of :func:`timed_search` for several search settings of one index, their rounds
    interleaved: round 1 of every setting, then round 2 of every setting... A burst of load on the machine
    that lasts a while then slows one round of several settings, which their fastest rounds leave out,
    instead of every round of one setting, which would read as that setting being slow."""
    check_queries(queries)
    rounds = ROUNDS.validate(rounds)
    n_timed = N_TIMED.validate(n_timed)
    timed = queries if n_timed is None else queries.select(range(min(n_timed, len(queries))))
    resolved = [index.resolve_knobs(k, dict(setting)) for setting in settings]
    measured: list[list[tuple]] = [[] for _ in resolved]
    for _ in range(rounds):
        for knobs, times in zip(resolved, measured):
            for i in range(min(warmup, len(timed))):
                index.search_encoded(timed.select([i]), k=k, **knobs)
            times.append(_time_queries(index, timed, k, knobs))
    return [_latency_row(index, times, STAGE_PERCENTILES) for times in measured]


def _device_name(machine: Mapping[str, Any]) -> str:
    return str(machine.get("gpu") or machine.get("processor") or machine["device"])


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` (``None``: as it is), restoring it after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _methods(
    docs: Encoding | Index, grid: Mapping[str, Any] | None, methods: Sequence | None
) -> list[tuple[Index | type[Index], Mapping[str, Any]]]:
    if methods is None:
        methods = [(docs if isinstance(docs, Index) else DEFAULT_KIND, grid or {})]
    elif grid is not None:
        raise ValueError(
            "give either grid= (one method) or methods= (a list of (kind, grid) pairs), not both"
        )
    if isinstance(methods, str | Mapping) or not isinstance(methods, Iterable):
        raise ValueError(
            "methods must be a list of (kind, grid) pairs, e.g. [('plaid', {'n_probe': [1, 4]})]"
        )
    resolved = []
    for entry in methods:
        if isinstance(entry, str | Index):
            entry = (entry, {})
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise ValueError(f"each method is a (kind, grid) pair, got {entry!r}")
        kind, knobs = entry
        if isinstance(kind, str):
            kind = index_kind(kind)
        elif not isinstance(kind, Index):
            raise ValueError(f"a method is an index kind name or an index, got {type(kind).__name__}")
        resolved.append((kind, knobs))
    if not resolved:
        raise ValueError("no method to sweep")
    return resolved


def sweep(
    docs: Encoding | Index,
    queries: Encoding,
    grid: Mapping[str, Any] | None = None,
    *,
    methods: Sequence | None = None,
    qrels: pd.DataFrame | Dataset | None = None,
    k: int = 10,
    measures: str | Sequence[str] = ("nDCG@10",),
    build: Mapping[str, Any] | None = None,
    devices: Sequence[str] = ("cpu",),
    threads: Sequence[int] | None = None,
    reference: pd.DataFrame | None = None,
    warmup: int = WARMUP,
    n_timed: int | None = None,
    rounds: int = ROUNDS.default,
    progress: bool = True,
) -> pd.DataFrame:
    """Search ``queries`` with every method under every combination of its knob values, on every
    device and thread count.

    Parameters
    ----------
    docs : Encoding or Index
        Encoded documents (each method's index is built from them, once per combination of its build
        knobs), or a ready index (then ``grid`` holds its search knobs only).
    queries : Encoding
        Encoded queries; all count for quality, the first ``n_timed`` (default all) are timed.
    grid : mapping, optional
        One method's knob grid, name → list of values (the method is ``docs`` when it is an index,
        else a :data:`DEFAULT_KIND` index built from ``docs``).
    methods : list of (kind, grid), optional
        Several methods: ``kind`` an index kind's name (``"flat"``, ``"plaid"``...) or a ready index,
        ``grid`` its search and build knobs, each checked against the kind's declarations.
    qrels : DataFrame or Dataset, optional
        Judgments, for the ``measures`` columns.
    measures : str or sequence of str
        ir_measures names, one column each (when judged).
    build : mapping, optional
        Fixed build knobs (``n_centroids``, ``seed``...), given to every method that declares them.
    devices : sequence of str, optional
        ``"cpu"`` and/or ``"cuda"``; CUDA is skipped with a warning on a machine without it. ``None``:
        every device the machine has (:func:`available_devices`).
    threads : sequence of int, optional
        Torch thread counts to time with (default: as set); recorded in ``threads``.
    reference : DataFrame, optional
        The exhaustive top-``k`` run that ``exhaustive_recall@k`` compares with; by default exact
        MaxSim over ``docs`` (the encoded vectors), or over a ready index's ``documents()``.
    rounds : int
        Rounds every timed query is searched in, keeping its fastest (:func:`timed_search`).

    Returns
    -------
    DataFrame
        One row per (method, build setting, device, threads, search setting): the columns of
        :func:`measure_setting`, ``build_s`` (seconds to build the index, 0 for a ready one),
        ``threads``, ``device_name``, ``setting`` (a label of the knobs that vary) and ``on_front``
        (on the Pareto frontier of latency against the first measure, or the exhaustive recall
        without judgments, per device). ``attrs["machines"]`` describes the machine per device.
    """
    check_queries(queries)
    k = K_PARAM.validate(k)
    names = _measure_names(measures)
    plan = _methods(docs, grid, methods)
    if not isinstance(docs, Encoding | Index):
        raise ValueError(f"docs must be an Encoding or an index, got {type(docs).__name__}")
    fixed_build = dict(build or {})
    declared_build = {name for kind, _ in plan for name in kind.BUILD_PARAMS}
    unknown = sorted(set(fixed_build) - declared_build)
    if unknown:
        raise UnknownKnobError(f"no method in the sweep takes the build knob {unknown[0]!r}")
    grids = []
    for kind, knobs in plan:
        search_grid, build_grid = validate_grid(knobs, kind if isinstance(kind, type) else type(kind))
        overlap = set(fixed_build) & set(build_grid)
        if overlap:
            raise ValueError(f"{sorted(overlap)[0]!r} is both swept and fixed in build=")
        if isinstance(kind, Index) and build_grid:
            raise ValueError(
                f"sweeping build knobs ({', '.join(build_grid)}) needs the encoded documents: pass an "
                "Encoding and the kind's name instead of a ready index"
            )
        if isinstance(kind, type) and not isinstance(docs, Encoding):
            raise ValueError(f"building a {kind.KIND} index needs the encoded documents: pass an Encoding")
        grids.append((kind, search_grid, build_grid))
    thread_counts = [None] if threads is None else [THREADS.validate(t) for t in threads]
    rounds = ROUNDS.validate(rounds)
    devices = available_devices(devices)
    if reference is None:
        reference = exhaustive_reference(docs, queries, k)

    machines = {device: describe_machine(device) for device in devices}
    total = (
        sum(
            int(np.prod([len(v) for v in b.values()])) * int(np.prod([len(v) for v in s.values()]))
            for _, s, b in grids
        )
        * len(devices)
        * len(thread_counts)
    )
    rows = []
    bar = tqdm(total=total, desc="sweep", unit="setting", disable=not progress)
    for kind, search_grid, build_grid in grids:
        build_settings = [dict(zip(build_grid, v)) for v in itertools.product(*build_grid.values())]
        search_settings = [dict(zip(search_grid, v)) for v in itertools.product(*search_grid.values())]
        for build_setting in build_settings:
            if isinstance(kind, Index):
                built, build_s = kind, 0.0
            else:
                own = {name: value for name, value in fixed_build.items() if name in kind.BUILD_PARAMS}
                start = time.perf_counter()
                built = kind.from_encoding(docs, **own, **build_setting)
                build_s = time.perf_counter() - start
            for device in devices:
                index = built.to(device)
                for n_threads in thread_counts:
                    with torch_threads(n_threads) as used:
                        latencies = interleaved_latency(
                            index,
                            queries,
                            search_settings,
                            k=k,
                            warmup=warmup,
                            n_timed=n_timed,
                            rounds=rounds,
                        )
                        for search_setting, latency in zip(search_settings, latencies):
                            row = measure_setting(
                                index,
                                queries,
                                k=k,
                                reference=reference,
                                qrels=qrels,
                                measures=names,
                                warmup=warmup,
                                n_timed=n_timed,
                                latency=latency,
                                **search_setting,
                            )
                            row.update(build_setting)
                            row.update(
                                build_s=build_s, threads=used, device_name=_device_name(machines[device])
                            )
                            rows.append(row)
                            bar.update()
    bar.close()
    table = with_frontier(pd.DataFrame(rows), names[0] if names[0] in rows[0] else f"exhaustive_recall@{k}")
    table.attrs["machines"] = machines
    return table


def with_frontier(table: pd.DataFrame, quality: str, latency: str = "p50_ms") -> pd.DataFrame:
    """``table`` (rows of :func:`measure_setting`) with its ``setting`` labels and ``on_front``: on the
    Pareto frontier of ``latency`` against ``quality``, per device."""
    table = table.copy()
    table["setting"] = setting_labels(table)
    table["on_front"] = frontier(table, quality, latency)
    table.attrs["quality"] = quality
    return table


def frontier(table: pd.DataFrame, quality: str, latency: str = "p50_ms") -> pd.Series:
    """The Pareto frontier of a sweep table for one pair of axes: :func:`pareto_front` of ``latency``
    against ``quality``, per device when the table has several. What ``on_front`` holds for the
    sweep's own quality, and what a plot of any other quality marks."""
    return pareto_front(table, latency, quality, by="device" if "device" in table.columns else None)


def stage_times(
    table: pd.DataFrame, by: Sequence[str] = ("n_probe",), percentile: str = "p50"
) -> pd.DataFrame:
    """Where the time goes: one row per search stage (and the whole search), one column per setting.

    Parameters
    ----------
    table : DataFrame
        A sweep table (:func:`sweep`), with ``<stage>_<percentile>_ms`` columns.
    by : sequence of str
        Columns that name a setting (e.g. ``["device", "n_probe"]``): the result's column labels.
    percentile : str
        Which of the sweep's :data:`STAGE_PERCENTILES`: ``"p50"`` (the median), ``"p10"``, ``"p90"``.

    Returns
    -------
    DataFrame
        Milliseconds; the index holds the stage names in search order and ``"whole search"``, so a
        table of many settings stays narrow.

    >>> table = pd.DataFrame({"n_probe": [1, 4], "scoring_p50_ms": [0.5, 0.6], "p50_ms": [1.0, 2.0]})
    >>> stage_times(table).to_dict()
    {1: {'scoring': 0.5, 'whole search': 1.0}, 4: {'scoring': 0.6, 'whole search': 2.0}}
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [name for name in by if name not in table.columns]
    if missing:
        raise ValueError(f"the table has no column {missing[0]!r}")
    suffix = f"_{percentile}_ms"
    columns = [c for c in table.columns if str(c).endswith(suffix) and str(c) != f"{percentile}_ms"]
    if not columns:
        raise ValueError(
            f"the table has no stage timings at {percentile}; a sweep reports {', '.join(STAGE_PERCENTILES)}"
        )
    stages = table.set_index(by)[columns].rename(columns=lambda c: c.removesuffix(suffix))
    stages["whole search"] = table[f"{percentile}_ms"].to_numpy() if f"{percentile}_ms" in table else np.nan
    return stages.T


def knob_columns() -> list[str]:
    """Every knob name an index kind declares (search, then build), kind by kind
    (:func:`lirlab.index.registry.knob_names`)."""
    return list(registry.knob_names())


def setting_labels(table: pd.DataFrame, knobs: Sequence[str] | None = None) -> pd.Series:
    """A short label per row naming its knob values, e.g. ``"n_probe=4, ndocs=256"``.

    By default the label holds the method when the table has several, then the declared knobs (and
    ``device``) whose value varies among the rows of the same method, or every search knob present when
    none varies anywhere. Each row names only the knobs that vary within its own method, so two settings
    of one method differing in a build knob (a pooled and a plain flat index) get different labels.

    >>> table = pd.DataFrame({"n_probe": [1, 4], "ndocs": [256, 256], "centroid_score_threshold": [0.5, 0.5]})
    >>> setting_labels(table).tolist()
    ['n_probe=1', 'n_probe=4']
    """
    if not len(table):
        return pd.Series([], dtype=object)
    if knobs is not None:
        missing = [name for name in knobs if name not in table.columns]
        if missing:
            raise ValueError(f"the table has no column {missing[0]!r}")
        named = {key: list(knobs) for key in table.index}
    else:
        named = _varying_knobs(table)

    def label(row: pd.Series) -> str:
        return ", ".join(
            f"{name}={_format(row[name])}" for name in named[row.name] if not _missing(row[name])
        )

    return table.apply(label, axis=1).astype(object)


def _varying_knobs(table: pd.DataFrame) -> dict[Any, list[str]]:
    """Per row, the columns its label names: ``method`` when several, then what varies in its method."""
    declared = knob_columns()
    candidates = [name for name in ("device", "threads", *declared) if name in table.columns]
    several = "method" in table.columns and table["method"].nunique() > 1
    groups = (
        table.groupby("method", sort=False, dropna=False) if "method" in table.columns else [(None, table)]
    )
    varying = {}
    for _, rows in groups:
        names = [name for name in candidates if rows[name].nunique(dropna=False) > 1]
        varying.update(dict.fromkeys(rows.index, names))
    if not several and not any(varying.values()):
        search = {name for entry in registry.kinds() for name in entry.params("search")}
        present = [
            name
            for name in declared
            if name in search and name in table.columns and table[name].notna().any()
        ]
        return dict.fromkeys(table.index, present)
    return {key: (["method"] if several else []) + names for key, names in varying.items()}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and np.isnan(value))


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
