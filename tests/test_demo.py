"""``lirlab demo`` writes its run, measures and figures offline."""

from __future__ import annotations

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
