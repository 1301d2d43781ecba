"""The reliability trials at full size (``python -m pytest -m reliability``, run by .ci/run; a few minutes).

Writes benchmarks/results/reliability.json. Skipped unless the ``reliability`` marker is selected.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the trials fork writers (POSIX only)"),
]

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.fixture(autouse=True)
def _only_when_selected(request):
    if "reliability" not in (request.config.getoption("-m") or ""):
        pytest.skip("run with: python -m pytest -m reliability")


def test_kills_races_and_two_writers_lose_nothing_mix_nothing_leave_nothing():
    from lirlab.bench.reliability import run_reliability

    report = run_reliability(trials=30, read_trials=40, writer_rounds=10, out_dir=RESULTS)
    totals = report["totals"]
    assert totals["kills"] >= 30 * 5 and totals["racing_reads"] >= 2 * 30
    assert (totals["silent_wrong"], totals["lost"], totals["left_behind"]) == (0, 0, 0), report["cases"]
    assert totals["failed_writers"] == 0 and totals["read_errors"] == 0, report["cases"]
    for case in report["cases"]:
        if case["case"].startswith("kill -9 while replacing"):
            assert case["old"] + case["new"] == case["trials"]
