"""Property tests over the ``lirlab`` command, run in-process: an exit code and one clear error line.

Every bad invocation must end with exit status 2 and a last stderr line ``lirlab: error: ...`` (or
argparse's ``lirlab COMMAND: error: ...`` after its usage line), never a traceback. Invocations are
drawn so that none gets as far as encoding a corpus (a missing model or a bad input stops each first).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lirlab import cli  # noqa: E402
from lirlab.cli import main  # noqa: E402
from lirlab.index import registry  # noqa: E402

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad inputs on disk, by name."""
    root = tmp_path_factory.mktemp("cli-inputs")
    empty = root / "empty-corpus"
    (empty / "qrels").mkdir(parents=True)
    (empty / "corpus.jsonl").write_text("")
    (empty / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "bees"}) + "\n")
    (empty / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    two = root / "two-column-qrels"
    (two / "qrels").mkdir(parents=True)
    (two / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "honey"}) + "\n")
    (two / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "bees"}) + "\n")
    (two / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\nq1\td1\n")
    no_id = root / "no-id"
    (no_id / "qrels").mkdir(parents=True)
    (no_id / "corpus.jsonl").write_text(json.dumps({"text": "honey"}) + "\n")
    (no_id / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "bees"}) + "\n")
    (no_id / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    user = root / "my-notes"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    (root / "two-fields.run").write_text("q1 d1\n")
    (root / "bad-rank.run").write_text("q1 Q0 d1 first 1.0 x\n")
    (root / "empty-dir").mkdir()
    shutil.copytree(Path(__file__).parent / "fixtures" / "fast_plaid" / "index", root / "fast-plaid")
    return {
        "fast_plaid": str(root / "fast-plaid"),
        "empty_corpus": str(empty),
        "two_column_qrels": str(two),
        "no_id": str(no_id),
        "user_folder": str(user),
        "two_fields_run": str(root / "two-fields.run"),
        "bad_rank_run": str(root / "bad-rank.run"),
        "empty_dir": str(root / "empty-dir"),
        "missing": str(root / "missing"),
        "root": str(root),
    }


def run(argv, capsys):
    """(exit status, the last stderr line) of ``lirlab ARGV``; any exception but SystemExit fails the test."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: usage line, then one error line
        code = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert not any("Traceback" in line for line in err), err
    return code, err[-1] if err else ""


def assert_one_clear_error(code, line, *fragments):
    assert code == 2, (code, line)
    assert line.startswith("lirlab") and ": error: " in line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (
            ["index", "--dataset", "{empty_corpus}", "--out", "{missing}", "--model", "/no/model"],
            ["corpus.jsonl", "no documents"],
        ),
        (
            ["index", "--dataset", "{two_column_qrels}", "--out", "{missing}", "--model", "/no/model"],
            ["test.tsv", "line 1"],
        ),
        (
            ["index", "--dataset", "{no_id}", "--out", "{missing}", "--model", "/no/model"],
            ["corpus.jsonl:1", "'_id'"],
        ),
        (
            ["index", "--dataset", "demo", "--out", "{user_folder}", "--model", "/no/model"],
            ["my-notes", "--overwrite"],
        ),
        (
            ["index", "--dataset", "demo", "--out", "{two_fields_run}", "--model", "/no/model"],
            ["not a folder"],
        ),
        (
            ["index", "--dataset", "demo", "--out", "{missing}", "--device", "cuda"],
            ["no usable CUDA GPU", "--device cpu"],
        ),
        (["index", "--dataset", "demo", "--out", "{missing}", "--device", "quantum"], ["quantum"]),
        (["evaluate", "--run", "{two_fields_run}", "--dataset", "demo"], ["two-fields.run, line 1"]),
        (["evaluate", "--run", "{bad_rank_run}", "--dataset", "demo"], ["bad-rank.run, line 1"]),
        (["evaluate", "--run", "{missing}", "--dataset", "demo"], ["missing"]),
        (["evaluate", "--run", "{empty_dir}", "--dataset", "demo"], ["empty-dir"]),
        (["search", "--index", "{missing}", "--query", "bees"], ["no such index folder"]),
        (["search", "--index", "{user_folder}", "--query", "bees"], ["my-notes", "not a lirlab index"]),
        (["search", "--index", "{two_fields_run}", "--query", "bees"], ["two-fields.run"]),
        (
            ["search", "--index", "{missing}", "--query", "bees", "--out", "{empty_dir}"],
            ["is a folder", "run.trec"],
        ),
        (["search", "--index", "{missing}", "--query", "caf\udce9"], ["no such index folder"]),
        (["search", "--index", "{missing}-caf\udce9", "--query", "x"], ["no such index folder", "\\udce9"]),
        (
            ["search", "--index", "{missing}", "--query", "bees", "--k", "10000000000000000000000000000000"],
            [],
        ),
        (["search", "--index", "{missing}", "--query", "bees", "--n-probe", "nan"], ["n-probe"]),
        (
            ["index", "--dataset", "demo", "--out", "{missing}", "--batch-size", "-1"],
            ["--batch-size", ">= 1"],
        ),
        (["index", "--dataset", "demo", "--out", "{missing}", "--batch-size", "0"], ["--batch-size", ">= 1"]),
        (["search", "--index", "{missing}", "--query", "bees", "--k", "-1"], ["--k", ">= 1"]),
        (["search", "--index", "{fast_plaid}", "--query", "bees"], ["fast-plaid index", "pass --model"]),
        (["search", "--index", "{fast_plaid}", "--query", "bees", "--nprobe", "2"], ["--nprobe", "plaid"]),
    ],
)
def test_bad_invocations_end_in_one_clear_line(files, capsys, argv, fragments):
    argv = [a.format(**files) for a in argv]
    code, line = run(argv, capsys)
    assert_one_clear_error(code, line, *[f.format(**files) for f in fragments])


def test_a_knob_value_that_parses_but_is_invalid_names_the_knob(files, capsys, tmp_path):
    from lirlab.index.flat import FlatIndex

    from .test_maxsim import random_encoding

    FlatIndex(random_encoding([2, 3], dim=4), model={"name": "/no/model"}).save(tmp_path / "idx")
    code, line = run(["search", "--index", str(tmp_path / "idx"), "--query", "bees", "--k", "0"], capsys)
    assert_one_clear_error(code, line, "k must be")


values = st.one_of(
    st.sampled_from(
        ["", "-1", "0", "nan", "inf", "1e999", "10000000000000000000000", "\udce9", "demo", "cuda", "-"]
    ),
    st.sampled_from(registry.kind_names()),
    st.sampled_from(
        ["empty_corpus", "two_column_qrels", "no_id", "user_folder", "two_fields_run", "empty_dir", "missing"]
    ),
    st.text(max_size=6),
)
flags = {
    "index": [
        "--dataset",
        "--out",
        "--kind",
        "--batch-size",
        "--nbits",
        "--n-centroids",
        "--r-reps",
        "--k1",
        "--device",
        "--split",
    ],
    "search": [
        "--index",
        "--query",
        "--dataset",
        "--k",
        "--n-probe",
        "--ndocs",
        "--out",
        "--format",
        "--centroid-score-threshold",
        "--nprobe",
        "--depth",
        "--candidates",
    ],
    "evaluate": ["--run", "--dataset", "--measures", "--split"],
}
required = {
    "index": ["--dataset", "demo", "--model", "/no/model"],
    "search": ["--index", "missing"],
    "evaluate": ["--run", "two_fields_run", "--dataset", "demo"],
}


@FUZZ
@given(
    command=st.sampled_from(sorted(flags)),
    pairs=st.data(),
)
def test_any_invocation_is_an_exit_code_and_one_line(files, capsys, command, pairs):
    chosen = pairs.draw(st.lists(st.tuples(st.sampled_from(flags[command]), values), max_size=4))
    argv = [command, *required[command]]
    for flag, value in chosen:
        argv += [flag, value]
    if command == "index" and "--out" not in argv:
        argv += ["--out", "missing"]
    if command == "index":
        argv += ["--model", "/no/model"]  # never gets as far as encoding
    argv = [files.get(a, a) if not a.startswith("--") else a for a in argv]
    code, line = run(argv, capsys)
    if code != 0:
        assert code == 2 and ": error: " in line, (argv, code, line)


def test_the_benchmark_tool_is_found_from_the_repository_not_the_working_directory(
    tmp_path, monkeypatch, capsys
):
    repository = Path(cli.__file__).resolve().parents[1]
    assert cli.BUILD_TOOL == repository.parent / "shared" / "tools" / "build_minilm_colbert.py"
    planted = tmp_path / "shared" / "tools" / "build_minilm_colbert.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("raise SystemExit('planted script ran')")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # ../shared/tools/... from here is the planted script
    ran = []

    class Done:
        returncode, stdout, stderr = 0, "", ""

    monkeypatch.setattr("subprocess.run", lambda command, **kw: ran.append(command) or Done())
    if cli.BUILD_TOOL.is_file():
        cli.benchmark_model(cli.BENCH_MODEL)
        assert ran and ran[0][1] == str(cli.BUILD_TOOL) and str(planted) not in ran[0]
        assert f"with {cli.BUILD_TOOL}" in capsys.readouterr().err
    else:
        with pytest.raises(FileNotFoundError, match="--build-tool"):
            cli.benchmark_model(cli.BENCH_MODEL)
        assert not ran
    ran.clear()
    cli.benchmark_model(cli.BENCH_MODEL, tool=planted)  # only when named explicitly
    assert ran[0][:2] == [sys.executable, str(planted)]
