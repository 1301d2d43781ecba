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
    argv = ["search", "--index", str(demo_index), "--dataset", "demo", "--out", str(run_file), "--k", "10"]
    assert main(argv) == 0
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
                "--k",
                "10",
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
    assert "--n-probe is not a search knob of a flat index; it takes none" in capsys.readouterr().err
    assert main(["index", "--dataset", "demo", "--out", "unused", "--model", "minilm", "--nbits", "2"]) == 2
    assert "--nbits is not a build knob of a flat index; it takes --pool-factor" in capsys.readouterr().err


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


# -- every kind, from the registry ------------------------------------------------------------------

QUERIES = ["what do bees eat", "how do fish breathe"]

#: Build knobs that keep each kind small on the tiny corpus.
SMALL = {"plaid": {"n_centroids": 8}, "warp": {"n_centroids": 8}, "muvera": {"r_reps": 4, "k_sim": 2}}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, 32-dimension BERT with a vocabulary of the tiny corpus's words (loads in an instant)."""
    from .test_train import tiny_folder

    return tiny_folder(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """A BEIR folder of eight documents in the tiny model's words."""
    import json

    from .test_train import DOCS, PAIRS
    from .test_train import QUERIES as TRAIN_QUERIES

    root = tmp_path_factory.mktemp("tiny-beir")
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in DOCS.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in TRAIN_QUERIES.items())
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in PAIRS)
    )
    return root


@pytest.fixture(scope="module")
def saved_kinds(tiny_model, tiny_dataset, tmp_path_factory):
    """Every registered kind built on the tiny corpus and saved by lirlab, by kind."""
    from dataclasses import replace

    from lirlab import data
    from lirlab.encoder import ColBERT
    from lirlab.index import registry

    encoder = ColBERT.load(tiny_model, device="cpu")
    docs = data.load(str(tiny_dataset)).docs
    encoded = replace(encoder.encode_documents(docs, progress=False), texts=tuple(d.full_text for d in docs))
    root = tmp_path_factory.mktemp("kinds")
    built = {}
    for name in registry.kind_names():
        index = registry.kind_class(name).from_encoding(encoded, encoder=encoder, **SMALL.get(name, {}))
        index.save(root / name)
        built[name] = (root / name, index)
    return built


@pytest.mark.parametrize("name", ["bm25", "bm25_rerank", "flat", "muvera", "plaid", "qdrant", "warp"])
def test_every_kind_s_folder_searches_from_the_cli_as_its_own_kind(name, saved_kinds, tmp_path, capsys):
    folder, index = saved_kinds[name]
    run_file = tmp_path / "run.tsv"
    argv = ["search", "--index", str(folder), "--out", str(run_file), "--format", "tsv", "--k", "5"]
    for query in QUERIES:
        argv += ["--query", query]
    assert main(argv) == 0, capsys.readouterr().err
    run = pd.read_csv(run_file, sep="\t", dtype={"qid": str, "docno": str})
    expected = index.search(QUERIES, k=5)
    assert run.docno.tolist() == expected.docno.tolist()
    assert run.score.to_numpy() == pytest.approx(expected.score.to_numpy(), abs=1e-4)


def test_every_registered_kind_is_searched_above():
    from lirlab.index import registry

    names = test_every_kind_s_folder_searches_from_the_cli_as_its_own_kind.pytestmark[0].args[1]
    assert tuple(names) == registry.kind_names()


def test_search_knobs_reach_the_kind_that_declares_them(saved_kinds, capsys):
    folder, index = saved_kinds["warp"]
    argv = [
        "search",
        "--index",
        str(folder),
        "--query",
        QUERIES[0],
        "--k",
        "3",
        "--nprobe",
        "1",
        "--out",
        "-",
    ]
    assert main(argv) == 0
    printed = [line.split()[2] for line in capsys.readouterr().out.splitlines()]
    assert printed == index.search(QUERIES[:1], k=3, nprobe=1).docno.tolist()
    assert main(["search", "--index", str(folder), "--query", "x", "--n-probe", "2"]) == 2
    assert "--n-probe is not a search knob of a warp index; it takes --nprobe, --t-prime, --bound" in (
        capsys.readouterr().err
    )


def test_index_takes_every_kind_and_its_build_knobs(tiny_model, tiny_dataset, tmp_path, capsys):
    import json

    out = tmp_path / "warp"
    argv = ["index", "--dataset", str(tiny_dataset), "--out", str(out), "--model", str(tiny_model)]
    assert main([*argv, "--kind", "warp", "--n-centroids", "8", "--nbits", "1"]) == 0, capsys.readouterr().err
    meta = json.loads((out / "metadata.json").read_text())
    assert (
        meta["type"] == "lirlab.warp" and meta["config"]["nbits"] == 1 and meta["config"]["n_centroids"] == 8
    )
    assert main(["search", "--index", str(out), "--query", QUERIES[0], "--nprobe", "8", "--out", "-"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 8  # every document: the corpus holds 8
    argv = ["index", "--dataset", "demo", "--out", str(tmp_path / "m"), "--kind", "muvera", "--nbits", "2"]
    assert main(argv) == 2
    assert "--nbits is not a build knob of a muvera index; it takes --r-reps" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "0"])
def test_a_batch_size_below_one_is_one_line_naming_the_flag(value, tmp_path, capsys):
    argv = ["index", "--dataset", "demo", "--out", str(tmp_path / "x"), "--model", "minilm"]
    assert main([*argv, "--batch-size", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lirlab: error: --batch-size must be a whole number >= 1")
    assert f"got {value}" in err[0] and "--batch-size 32" in err[0]
    assert not (tmp_path / "x").exists()


def test_a_kind_registered_by_a_test_is_at_every_edge_of_the_cli(tiny_model, tiny_dataset, tmp_path, capsys):
    from lirlab.index import load_index, registry

    from .test_registry import ShareIndex

    registry.register_kind(ShareIndex)
    try:
        for command, flag in (("index", "--tag"), ("search", "--share")):
            with pytest.raises(SystemExit):
                main([command, "--help"])
            help_text = capsys.readouterr().out
            assert "share_test" in help_text and flag in help_text
        out = tmp_path / "share"
        argv = ["index", "--dataset", str(tiny_dataset), "--out", str(out), "--model", str(tiny_model)]
        assert main([*argv, "--kind", "share_test", "--tag", "first"]) == 0, capsys.readouterr().err
        assert type(load_index(out)) is ShareIndex
        assert (
            main(["search", "--index", str(out), "--query", QUERIES[0], "--share", "0.5", "--out", "-"]) == 0
        )
        assert len(capsys.readouterr().out.splitlines()) == 4  # the first half of the 8 documents
    finally:
        registry.unregister_kind(ShareIndex.KIND)


def test_a_kind_whose_code_cannot_be_imported_is_one_line_before_anything_loads(tmp_path, capsys):
    from lirlab.index import registry

    registry.register_kind(
        "lirlab_no_such_module:Thing",
        name="missing_kind",
        artifact_type="tests.missing_kind",
        knobs="lirlab.index.knobs.flat",
    )
    try:
        argv = ["index", "--dataset", "demo", "--out", str(tmp_path / "x"), "--model", "/no/model"]
        assert main([*argv, "--kind", "missing_kind"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "lirlab_no_such_module" in err[0], err
    finally:
        registry.unregister_kind("missing_kind")


@pytest.mark.parametrize(
    "tool, folder", [("fast-plaid", "fast_plaid/index"), ("colbert-ai", "colbert_ai/nbits2")]
)
def test_a_foreign_folder_searches_from_the_cli_with_the_model_named(
    tool, folder, stanford_dir, tmp_path, capsys
):
    import shutil
    from pathlib import Path

    copy = tmp_path / "index"
    shutil.copytree(Path(__file__).parent / "fixtures" / folder, copy)
    assert main(["search", "--index", str(copy), "--query", "bees"]) == 2
    assert f"is a {tool} index, which does not name its model" in capsys.readouterr().err
    argv = ["search", "--index", str(copy), "--query", "how do bees make honey", "--model", str(stanford_dir)]
    assert main([*argv, "--n-probe", "4", "--out", "-"]) == 0, capsys.readouterr().err
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 10 and [r[3] for r in rows] == [str(i) for i in range(1, 11)]


@pytest.mark.parametrize("value", ["-1", "0"])
def test_train_refuses_a_batch_size_below_one_naming_the_flag_before_loading_anything(
    value, tmp_path, capsys
):
    argv = ["train", "--dataset", "demo", "--out", str(tmp_path / "run"), "--model", "minilm"]
    assert main([*argv, "--batch-size", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lirlab: error: --batch-size must be >= 1"), err
    assert not (tmp_path / "run").exists()


# -- what a newcomer meets: defaults that agree, slices, notices, progress ----------------------------


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_search_over_a_dataset_is_deep_enough_for_evaluate_s_defaults(demo_index, tmp_path, capsys):
    deep, shallow = tmp_path / "deep.trec", tmp_path / "shallow.trec"
    assert main(["search", "--index", str(demo_index), "--dataset", "demo", "--out", str(deep)]) == 0
    assert len(deep.read_text().splitlines()) == 30 * 100  # the demo corpus holds 200 documents
    argv = ["search", "--index", str(demo_index), "--dataset", "demo", "--out", str(shallow), "--k", "10"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["evaluate", "--run", str(deep), "--dataset", "demo"]) == 0
    assert not any("deeper" in line for line in _err_lines(capsys))
    assert main(["evaluate", "--run", str(shallow), "--dataset", "demo"]) == 0
    (notice,) = [line for line in _err_lines(capsys) if "deeper" in line]
    assert notice.startswith("lirlab: R@100 look deeper than") and "at most 10 results per query" in notice
    assert "--k 100" in notice
    assert (
        main(["evaluate", "--run", str(shallow), "--dataset", "demo", "--measures", "nDCG@10", "RR@10"]) == 0
    )
    assert not any("deeper" in line for line in _err_lines(capsys))


def test_the_query_lirlab_help_suggests_is_answered_by_the_demo_corpus(demo_index, capsys):
    import re

    from lirlab import cli, data

    (query,) = re.findall(r'lirlab search --index demo-index --query "([^"]+)"', cli.EXAMPLES)
    demo = data.load("demo")
    (qid,) = [q.qid for q in demo.queries if q.text == query]
    relevant = set(demo.qrels[(demo.qrels.query_id == qid) & (demo.qrels.relevance > 0)].doc_id)
    assert main(["search", "--index", str(demo_index), "--query", query, "--k", "1", "--out", "-"]) == 0
    (row,) = capsys.readouterr().out.splitlines()
    assert row.split()[2] in relevant, (query, row)


def _demo_judgments(n_queries: int | None = None) -> tuple[list[str], set[str]]:
    """The demo corpus's document ids in order, and those judged relevant to its first queries, read
    from its files."""
    import json

    from lirlab.data import DEMO_DIR

    docnos = [json.loads(line)["_id"] for line in (DEMO_DIR / "corpus.jsonl").read_text().splitlines()]
    qids = [json.loads(line)["_id"] for line in (DEMO_DIR / "queries.jsonl").read_text().splitlines()]
    kept = set(qids[:n_queries])
    rows = [line.split("\t") for line in (DEMO_DIR / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    return docnos, {d for q, d, r in rows if q in kept and int(r) > 0}


@pytest.fixture(scope="module")
def sliced_demo_index(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("slice") / "index"
    argv = ["index", "--dataset", "demo", "--out", str(out), "--model", str(tiny_model), "--doc-maxlen", "32"]
    assert main([*argv, "--max-queries", "3", "--max-docs", "40"]) == 0  # the tiny model holds 64 positions
    return out


def test_max_docs_keeps_the_judged_documents_of_the_kept_queries(sliced_demo_index):
    from lirlab.index import load_index

    docnos, judged = _demo_judgments(3)
    kept = list(load_index(sliced_demo_index).docnos)
    assert len(kept) == 40 and judged <= set(kept)
    assert kept == [d for d in docnos if d in set(kept)], "in corpus order"


def test_search_says_when_most_judged_documents_are_not_in_the_index(sliced_demo_index, tmp_path, capsys):
    from lirlab.index import load_index

    _, judged = _demo_judgments()
    missing = judged - set(load_index(sliced_demo_index).docnos)
    assert len(missing) * 2 > len(judged)
    capsys.readouterr()
    argv = ["search", "--index", str(sliced_demo_index), "--dataset", "demo", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    notices = [line for line in _err_lines(capsys) if "judged relevant" in line]
    assert notices == [
        f"lirlab: {len(missing)} of the {len(judged)} documents judged relevant to these 30 queries are not "
        "in the index, so the scores will be low; index the collection whole, or a slice that keeps them "
        "(lirlab index --max-docs N --max-queries M)"
    ]
    assert main([*argv, "--max-queries", "3"]) == 0
    assert not [line for line in _err_lines(capsys) if "judged relevant" in line]
    assert len({line.split()[0] for line in (tmp_path / "r").read_text().splitlines()}) == 3


def test_search_over_a_dataset_shows_a_progress_bar_with_an_eta(tiny_model, tiny_dataset, tmp_path, capsys):
    import re

    out = tmp_path / "index"
    assert main(["index", "--dataset", str(tiny_dataset), "--out", str(out), "--model", str(tiny_model)]) == 0
    capsys.readouterr()
    argv = ["search", "--index", str(out), "--dataset", str(tiny_dataset), "--k", "3"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"search: 100%.*\b(\d+)/\1 \[\d\d:\d\d<\d\d:\d\d", err), err
    assert main(["search", "--index", str(out), "--query", "bees", "--k", "3"]) == 0
    assert "search:" not in capsys.readouterr().err, "a query or two needs no bar"
