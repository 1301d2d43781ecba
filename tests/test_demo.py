"""``lirlab demo`` writes its run, measures and figures offline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lirlab.demo import QUERY_MAXLENS, run_demo

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory, minilm_dir):
    return run_demo(model="minilm", out=tmp_path_factory.mktemp("demo"), device="cpu")


@pytest.mark.parametrize("name", ["alignment.png", "compression.png", "masks.png"])
def test_demo_writes_its_figures(demo_out, name):
    data = (demo_out / name).read_bytes()
    assert data.startswith(PNG) and len(data) > 5_000


def test_demo_masks_curve_starts_at_no_augmentation(demo_out):
    curve = pd.read_csv(demo_out / "masks.csv")
    assert sorted(set(curve.query_maxlen)) == sorted(QUERY_MAXLENS)
    plain = curve[curve.query_maxlen == 0]["nDCG@10"]
    metrics = pd.read_csv(demo_out / "metrics.csv").set_index("measure")["value"]
    # MiniLM is not trained with augmentation, so the unpadded queries are the ones the run used.
    assert plain.tolist() == pytest.approx([metrics["nDCG@10"]] * len(plain), abs=1e-9)


def test_demo_alignment_contributions_are_similarities(demo_out):
    table = pd.read_csv(demo_out / "alignment.csv")
    assert len(table) > 0 and table.similarity.between(-1, 1).all()


def test_lirlab_demo_says_its_offline_fallback_in_one_line(minilm_dir, tmp_path):
    """Offline, ``lirlab demo`` falls back to MiniLM with a notice: one ``lirlab: ...`` line on stderr,
    not Python's ``file:line: NotColBERTWarning:`` block with the source line under it. (The demo is
    stopped once the model has loaded: what comes after is tested above.)"""
    import os
    import subprocess
    import sys

    probe = (
        "import sys, lirlab.data\n"
        "def stop(*args, **kwargs):\n"
        "    raise ValueError('stopped once the model had loaded')\n"
        "lirlab.data.load = stop\n"
        "from lirlab.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "demo", "--out", str(tmp_path / "demo"), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=Path(__file__).resolve().parents[1],
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines[-1] == "lirlab: error: stopped once the model had loaded", lines
    (notice,) = [line for line in lines if "all-MiniLM-L6-v2" in line]
    assert notice.startswith("lirlab: could not get") and "NOT a ColBERT-trained model" in notice
    assert not [line for line in lines if "Warning" in line or ".py:" in line or "warnings.warn" in line], (
        lines
    )


def test_gitignore_covers_what_the_demo_writes_and_nothing_it_does_not():
    import inspect

    from lirlab import cli

    root = Path(__file__).resolve().parents[1]
    ignored = (root / ".gitignore").read_text().splitlines()
    default = inspect.signature(run_demo).parameters["out"].default
    sub = next(a for a in cli.build_parser(only="demo")._actions if a.dest == "command").choices["demo"]
    assert default == next(a.default for a in sub._actions if a.dest == "out")
    assert f"/{default}/" in ignored
    assert [line for line in ignored if "demo" in line] == [f"/{default}/"], "no folder nothing writes"
