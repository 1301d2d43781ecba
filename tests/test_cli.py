"""The lirlab command: the index → search → evaluate round, and one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest

from lirlab.cli import main


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory, minilm_dir):
    folder = tmp_path_factory.mktemp("cli") / "demo-index"
    assert main(["index", "--dataset", "demo", "--out", str(folder), "--model", "minilm"]) == 0
    return folder


def test_index_search_evaluate(demo_index, tmp_path, capsys):
    assert main(["search", "--index", str(demo_index), "--query", "how does a caldera form", "--k", "3"]) == 0
    printed = capsys.readouterr().out
    assert "volcano-" in printed and "rank" in printed
    run_file = tmp_path / "run.trec"
    assert main(["search", "--index", str(demo_index), "--dataset", "demo", "--out", str(run_file)]) == 0
    lines = run_file.read_text().splitlines()
    first = lines[0].split()
    assert len(lines) == 30 * 10 and all(len(line.split()) == 6 for line in lines), (
        "TREC: qid Q0 docno rank score tag"
    )
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "lirlab"
    assert len({line.split()[0] for line in lines}) == 30
    table = tmp_path / "run.tsv"
    assert (
        main(
            [
                "search",
                "--index",
                str(demo_index),
                "--dataset",
                "demo",
                "--out",
                str(table),
                "--format",
                "tsv",
            ]
        )
        == 0
    )
    run = pd.read_csv(table, sep="\t")
    assert list(run.columns) == ["qid", "query", "docno", "score", "rank"] and run.qid.nunique() == 30
    assert run.docno.tolist() == [line.split()[2] for line in lines]
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_file), "--dataset", "demo", "--measures", "nDCG@10"]) == 0
    value = float(capsys.readouterr().out.split()[-1])
    assert 0.5 < value <= 1.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["index", "--dataset", "./no/such/folder", "--out", "x", "--model", "minilm"], "no dataset folder"),
        (["index", "--dataset", "demo", "--out", "x", "--model", "./no-model-here"], "no model folder"),
        (["search", "--index", "./nowhere", "--query", "bees"], "nowhere"),
        (["evaluate", "--run", "./missing.tsv", "--dataset", "demo"], "no such run file"),
    ],
)
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lirlab: error:") and message in err[-1]


def test_search_needs_exactly_one_query_source(demo_index, capsys):
    assert main(["search", "--index", str(demo_index)]) == 2
    assert "either --query" in capsys.readouterr().err
    assert main(["search", "--index", str(demo_index), "--query", "  "]) == 2
    assert "query '1' is empty" in capsys.readouterr().err


def test_bad_measure(demo_index, tmp_path, capsys):
    run_file = tmp_path / "run.tsv"
    main(["search", "--index", str(demo_index), "--query", "bees", "--out", str(run_file)])
    assert main(["evaluate", "--run", str(run_file), "--dataset", "demo", "--measures", "nDCG@x"]) == 2
    assert "unknown measure" in capsys.readouterr().err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "lirlab index --dataset demo" in out and "minilm" in out
