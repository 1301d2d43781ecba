"""The reliability trials (``python -m pytest -m reliability``, run by .ci/run; a few minutes on 2 cores).

Every registered index kind and training checkpoints get a few kills, damaged loads, racing reads and
rounds of two writers each; the full counts come from ``lirlab bench reliability``, which alone writes
benchmarks/results/reliability.*. Skipped unless the ``reliability`` marker is selected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lirlab.index.registry import kind_names

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the trials fork writers (POSIX only)"),
]

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

#: Small counts: every case of every trial runs, a few times each.
SMALL = {"trials": 6, "read_trials": 8, "writer_rounds": 2, "damage_trials": 16, "n_docs": 80}


@pytest.fixture(autouse=True)
def _only_when_selected(request):
    if "reliability" not in (request.config.getoption("-m") or ""):
        pytest.skip("run with: python -m pytest -m reliability")


@pytest.fixture(autouse=True)
def _tracked_results_untouched():
    """The committed results come from the bench command alone; a test run must leave them as they are."""
    before = {p.name: p.read_bytes() for p in RESULTS.glob("reliability.*")}
    yield
    after = {p.name: p.read_bytes() for p in RESULTS.glob("reliability.*")}
    assert after == before, "the test rewrote benchmarks/results/reliability.*: give it a temporary folder"


@pytest.mark.parametrize("subject", [*kind_names(), "checkpoint"])
def test_kills_damage_races_and_two_writers_lose_nothing_mix_nothing_leave_nothing(subject, tmp_path):
    from lirlab.bench.reliability import FAILURES, run_reliability

    checkpoint = subject == "checkpoint"
    report = run_reliability(
        **SMALL,
        kinds=() if checkpoint else (subject,),
        checkpoints=checkpoint,
        out_dir=tmp_path / "results",
        workdir=tmp_path,
    )
    written = json.loads((tmp_path / "results" / "reliability.json").read_text())
    assert written["totals"] == report["totals"] and written["machine"]["cpu_count"] >= 1
    cases = {case["case"]: case for case in report["cases"]}
    expected = {"kill -9 during a first save", "damaged file, verify=True"}
    expected |= (
        set() if checkpoint else {"kill -9 while replacing", "reader racing a writer", "two writers at once"}
    )
    assert expected <= set(cases)
    failures = {key: report["totals"][key] for key in FAILURES if report["totals"][key]}
    assert not failures, [case for case in report["cases"] if any(case.get(key) for key in failures)]
    assert report["totals"]["kills"] >= 3 * SMALL["trials"] - (SMALL["trials"] if checkpoint else 0)
    for case in report["cases"]:
        if case["case"].startswith("kill -9 while replacing"):
            assert case["old"] + case["new"] == case["trials"], case
        if case["case"].startswith("damaged"):
            assert case["damaged_loads"] == min(SMALL["damage_trials"], case["possible"]) > 0, case
            assert case["refused"] > 0, case
    assert not any(p.name.startswith("lirlab-reliability-") for p in tmp_path.iterdir()), "workdir cleaned"


def test_a_qdrant_save_after_a_flush_was_killed_still_loads(tmp_path):
    """A writer killed while the engine flushes leaves ``.atomicwrite*/tmpfile.tmp`` in the shard it flushed
    (the kill trials found it in the shard a forked writer shared, and it is there in a shard kept at
    ``path=``); saving that index must still give a folder that loads as the index."""
    from lirlab.bench.reliability import _encoding
    from lirlab.index.registry import kind_class

    cls = kind_class("qdrant")
    docs, queries = _encoding(30, seed=1, prefix="d"), _encoding(3, seed=9, prefix="q", kind="query")
    index = cls.from_encoding(docs, path=tmp_path / "shard")
    expected = [p.tolist() for p, _ in index.search_encoded(queries, k=5)]
    segment = next(p for p in (tmp_path / "shard" / "segments").iterdir() if p.is_dir())
    (segment / ".atomicwriteAbC123").mkdir()
    (segment / ".atomicwriteAbC123" / "tmpfile.tmp").write_bytes(b"half a flush")
    index.save(tmp_path / "index")
    index.close()
    loaded = cls.load(tmp_path / "index")
    try:
        assert [p.tolist() for p, _ in loaded.search_encoded(queries, k=5)] == expected
    finally:
        loaded.close()
