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


def test_version_and_knob_flags_from_the_declarations(demo_index, capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("lirlab ")
    assert main(["search", "--index", str(demo_index), "--query", "bees", "--n-probe", "2"]) == 2
    assert "a flat index takes no search knobs, got 'n_probe'" in capsys.readouterr().err
    assert main(["index", "--dataset", "demo", "--out", "unused", "--model", "minilm", "--nbits", "2"]) == 2
    assert "--nbits is not a knob of a flat index" in capsys.readouterr().err


def test_a_trec_run_written_by_lirlab_evaluates_with_the_ir_measures_cli(demo_index, tmp_path, capsys):
    import subprocess
    import sys

    from lirlab import data, evaluate
    from lirlab.results import read_run

    run_file = tmp_path / "run.trec"
    assert main(["search", "--index", str(demo_index), "--dataset", "demo", "--out", str(run_file)]) == 0
    qrels = data.load("demo").qrels
    qrels_file = tmp_path / "qrels.txt"
    qrels_file.write_text("".join(f"{q} 0 {d} {r}\n" for q, d, r in qrels.itertuples(index=False)))
    out = subprocess.run(
        [sys.executable, "-m", "ir_measures", str(qrels_file), str(run_file), "nDCG@10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = float(out.stdout.split()[-1])
    ours = float(evaluate(read_run(run_file), qrels, ["nDCG@10"]).value.iloc[0])
    assert theirs == pytest.approx(ours, abs=1e-4) and 0.5 < ours <= 1.0


def test_bench_methods_takes_its_own_options(capsys):
    assert main(["bench", "--queries", "3", "methods"]) == 2
    assert "'lirlab bench methods' takes its own options after 'methods'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["bench", "methods", "--help"])
    assert done.value.code == 0 and "--pool-factors" in capsys.readouterr().out
