"""What a newcomer meets on the command line and around it: mistakes answered at once in one line,
progress on long searches, slices that keep the judged documents, defaults that agree with each other,
examples that work, and a checkout whose notebooks are all listed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lirlab import cli

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


# -- the notebooks are all listed ---------------------------------------------------------------------


def test_the_notebooks_readme_names_every_notebook():
    readme = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    assert len(NOTEBOOKS) >= 8
    missing = [nb.name for nb in NOTEBOOKS if f"`{nb.name}`" not in readme]
    assert not missing, f"notebooks/README.md does not list {missing}"


def test_the_quickstart_s_next_list_names_every_other_notebook():
    cells = json.loads((ROOT / "notebooks" / "01_quickstart.ipynb").read_text(encoding="utf-8"))["cells"]
    (following,) = [
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("**Next:**")
    ]
    numbers = {int(n) for n in re.findall(r"(?<![\w@])(\d+) ·", following)}
    assert numbers == {int(nb.name[:2]) for nb in NOTEBOOKS} - {1}, following


# -- mistakes are one line, before torch or a model loads ----------------------------------------------

#: A command line with one mistake in it, and a fragment its one error line must hold. ``{index}`` is a
#: lirlab index folder, ``{notes}`` a folder lirlab did not write, ``{run}`` a run file.
MISTAKES = [
    (["search", "--index", "{index}", "--query", "bees", "--format", "csv"], "invalid choice: 'csv'"),
    (["index", "--dataset", "demo", "--out", "{out}", "--kind", "bogus"], "invalid choice: 'bogus'"),
    (["search", "--query", "bees"], "the following arguments are required: --index"),
    (["index", "--dataset", "./no/such/folder", "--out", "{out}", "--model", "minilm"], "no dataset folder"),
    (["search", "--index", "{index}", "--dataset", "./no/such/folder"], "no dataset folder"),
    (["search", "--index", "./no/such/index", "--query", "bees"], "no such index folder"),
    (
        ["index", "--dataset", "demo", "--out", "{out}", "--kind", "plaid", "--n-centroids", "0"],
        "--n-centroids",
    ),
    (["index", "--dataset", "demo", "--out", "{out}", "--doc-maxlen", "0"], "--doc-maxlen must be"),
    (["index", "--dataset", "demo", "--out", "{out}", "--device", "gpu"], "--device 'gpu'"),
    (["index", "--dataset", "demo", "--out", "{out}", "--model", "./no-model"], "no model folder"),
    (["index", "--dataset", "demo", "--out", "{notes}", "--model", "minilm"], "not a lirlab artifact"),
    (["index", "--dataset", "demo", "--out", "{out}", "--max-docs", "0"], "--max-docs must be"),
    (["search", "--index", "{index}", "--dataset", "demo", "--max-queries", "-3"], "--max-queries must be"),
    (["search", "--index", "{index}", "--dataset", "demo", "--k", "0"], "--k must be"),
    (["search", "--index", "{index}", "--query", "bees", "--n-probe", "2"], "--n-probe is not a search knob"),
    (["search", "--index", "{index}", "--query", "bees", "--model", "./no-model"], "no model folder"),
    (["evaluate", "--run", "{run}", "--dataset", "demo", "--measures", "nDCG@x"], "unknown measure 'nDCG@x'"),
    (["evaluate", "--run", "./no-run.trec", "--dataset", "demo"], "no such run file"),
    (["evaluate", "--run", "{run}", "--dataset", "./no/such/folder"], "no dataset folder"),
    (["demo", "--model", "./no-model", "--out", "{out}"], "no model folder"),
    (["bench", "core", "--dataset", "./no/such/folder"], "no dataset folder"),
]

#: Runs each command line in one fresh interpreter and reports, per line, its exit status, what it
#: printed on stderr, and whether torch had been imported by then.
PROBE = """
import contextlib, io, json, sys
from lirlab.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as done:
            code = done.code
    results.append({"code": code, "err": err.getvalue(), "torch": "torch" in sys.modules})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def mistakes_answered(tmp_path_factory):
    from lirlab.index.flat import FlatIndex

    from .test_maxsim import random_encoding

    root = tmp_path_factory.mktemp("mistakes")
    FlatIndex(random_encoding([2, 3], dim=4), model={"name": "/no/model"}).save(root / "index")
    (root / "notes").mkdir()
    (root / "notes" / "mine.txt").write_text("keep me")
    (root / "run.trec").write_text("q01 Q0 bees-01 1 2.0 x\n")
    paths = {"index": root / "index", "notes": root / "notes", "run": root / "run.trec", "out": root / "out"}
    argvs = [[a.format(**paths) for a in argv] for argv, _ in MISTAKES]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {"answers": json.loads(done.stdout), "out_written": (root / "out").exists()}


@pytest.mark.parametrize("case", range(len(MISTAKES)), ids=[" ".join(argv[:2]) for argv, _ in MISTAKES])
def test_a_mistake_is_one_line_before_torch_or_a_model_loads(case, mistakes_answered):
    argv, fragment = MISTAKES[case]
    answer = mistakes_answered["answers"][case]
    lines = answer["err"].strip().splitlines()
    assert answer["code"] == 2, answer
    assert len(lines) == 1 and lines[0].startswith("lirlab: error: ") and fragment in lines[0], lines
    assert not answer["torch"], f"lirlab {' '.join(argv)} imported torch before refusing"
    if "invalid choice" in fragment or "required" in fragment:
        assert lines[0].endswith(f"(see lirlab {argv[0]} --help)"), lines


def test_a_refused_command_writes_nothing(mistakes_answered):
    assert not mistakes_answered["out_written"], "a refused command made its --out folder"


def test_a_mistyped_command_is_one_line_that_points_at_help(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["serach", "--index", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and len(err) == 1
    assert err[0].startswith("lirlab: error: argument COMMAND: invalid choice: 'serach'")
    assert err[0].endswith("(see lirlab --help)")


# -- help that is true in any checkout ------------------------------------------------------------------


def _help_of(command: str) -> str:
    parsers = next(a for a in cli.build_parser(only=command)._actions if a.dest == "command").choices
    return parsers[command].format_help()


def test_bench_help_names_no_default_path_a_plain_clone_lacks(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "SHARED_DATA", tmp_path / "no-shared" / "data")
    monkeypatch.setattr(cli, "BUILD_TOOL", tmp_path / "no-shared" / "tools" / "build.py")
    text = " ".join(_help_of("bench").split())
    assert "no-shared" not in text and "../shared" not in text, text
    assert "none in this checkout" in text
    assert cli.main(["bench", "core"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lirlab bench core needs --dataset" in err[0], err


def test_bench_help_names_the_workplace_copies_where_they_are(monkeypatch, tmp_path):
    (tmp_path / "data" / "scifact").mkdir(parents=True)
    (tmp_path / "build.py").write_text("")
    monkeypatch.setattr(cli, "SHARED_DATA", tmp_path / "data")
    monkeypatch.setattr(cli, "BUILD_TOOL", tmp_path / "build.py")
    text = "".join(_help_of("bench").split())
    assert "".join(str(tmp_path / "data" / "scifact").split()) in text
    assert "".join(str(tmp_path / "build.py").split()) in text


def test_knob_help_says_where_an_unset_default_comes_from_only_where_it_does():
    from lirlab.encoder_knobs import ENCODER_PARAMS
    from lirlab.index import registry

    for command, which in (("index", "build"), ("search", "search")):
        text = " ".join(_help_of(command).split())
        assert "from the model or k" not in text
        for entry in registry.kinds():
            for param in entry.params(which).values():
                if param.default is None:  # the knob's own description says what it follows
                    assert re.search(r"\bdefault\b|\bauto\b", param.description), (entry.name, param.name)
    parser = next(a for a in cli.build_parser(only="index")._actions if a.dest == "command").choices["index"]
    helps = {action.dest: action.help for action in parser._actions}
    for name, param in ENCODER_PARAMS.items():
        if param.default is None and param.type is not bool:
            assert helps[name].endswith("(default: from the model)"), (name, helps[name])
