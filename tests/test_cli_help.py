"""The command line answers --help at once and documents every subcommand and option."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from lirlab import cli

#: Every help a user can ask for: each subcommand, and the benchmarks with parsers of their own.
HELP_COMMANDS = [*cli.COMMANDS, "bench train", "bench methods"]

#: Helps that load no torch (the declarations behind their options are torch-free).
LIGHT_HELP = ["index", "search", "evaluate", "demo", "bench", "train"]

#: Flags from knob declarations that each help must list (a sample pinned here; every option of the
#: live parser is checked too).
DECLARED_FLAGS = {
    "index": [
        "--query-maxlen",
        "--doc-maxlen",
        "--nbits",
        "--n-centroids",
        "--pool-factor",
        "--r-reps",
        "--k1",
    ],
    "search": ["--n-probe", "--centroid-score-threshold", "--ndocs", "--nprobe", "--t-prime", "--depth"],
    "train": ["--lr", "--batch-size"],
    "bench": ["--query-maxlen", "--build-tool"],
}


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_help_and_version_import_neither_torch_nor_pandas():
    probe = (
        "import sys\n"
        "from lirlab.cli import main\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    for name in cli.COMMANDS:
        assert name in done.stdout  # the subcommands are listed
    assert "lirlab " in done.stdout  # --version answered


def test_import_lirlab_is_lazy_and_names_resolve():
    probe = (
        "import sys, lirlab\n"
        "assert 'torch' not in sys.modules, 'import lirlab loaded torch'\n"
        "from lirlab.evaluate import evaluate as function\n"
        "assert lirlab.evaluate is function, lirlab.evaluate\n"
        "assert lirlab.ColBERT.__name__ == 'ColBERT' and lirlab.FlatIndex.__name__ == 'FlatIndex'\n"
        "assert lirlab.data.load is not None and 'ColBERT' in dir(lirlab)\n"
        "print('OK')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr


def test_every_subcommand_has_a_one_line_description_and_every_option_a_help():
    full = _subparsers(cli.build_parser())
    light = _subparsers(cli.build_parser(only=None))
    listed = {a.dest: a.help for a in full._choices_actions}
    assert list(listed) == list(cli.COMMANDS)
    # the quick listing (`lirlab --help`) says exactly what each full subparser says
    assert {a.dest: a.help for a in light._choices_actions} == listed
    parsers = dict(full.choices)
    parsers["bench train"] = cli._bench_train_parser()
    parsers["bench methods"] = cli._bench_own_parser("methods")
    for name, parser in parsers.items():
        if name in listed:
            text = listed[name]
            assert text and "\n" not in text and len(text) <= 100, (name, text)
        assert parser.description, f"{name}: no description"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), (
                f"lirlab {name}: {action.option_strings or action.dest} has no help"
            )


def test_a_subcommand_parsed_alone_keeps_its_options():
    parser = cli.build_parser(only="evaluate")
    args = parser.parse_args(["evaluate", "--run", "r.trec", "--dataset", "demo", "--tsv"])
    assert args.tsv and args.func is cli._cmd_evaluate


def _live_parser(command: str) -> argparse.ArgumentParser:
    """The parser ``lirlab COMMAND`` parses with."""
    if command == "bench train":
        return cli._bench_train_parser()
    if command == "bench methods":
        return cli._bench_own_parser("methods")
    return _subparsers(cli.build_parser(only=command)).choices[command]


def _help_in_a_fresh_process(command: str) -> subprocess.CompletedProcess:
    probe = (
        "import sys\n"
        "from lirlab.cli import main\n"
        "try:\n"
        f"    main({[*command.split(), '--help']!r})\n"
        "except SystemExit as done:\n"
        "    print('EXIT', done.code, file=sys.stderr)\n"
        "print('TORCH', 'torch' in sys.modules, file=sys.stderr)\n"
    )
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_subcommand_help_lists_every_option_and_the_declared_knobs(command):
    done = _help_in_a_fresh_process(command)
    assert "EXIT 0" in done.stderr, done.stderr
    assert done.stdout.startswith(f"usage: lirlab {command} ")
    for flag in DECLARED_FLAGS.get(command, []):
        assert flag in done.stdout, f"lirlab {command} --help does not list {flag}"
    for action in _live_parser(command)._actions:
        for option in action.option_strings:
            assert option in done.stdout, f"lirlab {command} --help does not list {option}"
    if command in LIGHT_HELP:
        assert "TORCH False" in done.stderr, f"lirlab {command} --help imported torch"


def test_every_registered_kind_is_offered_with_its_knobs():
    from lirlab.index import registry

    index, search = _live_parser("index"), _live_parser("search")
    kind = next(a for a in index._actions if a.dest == "kind")
    assert tuple(kind.choices) == registry.kind_names()
    for name in registry.kind_names():
        assert name in kind.help
        for which, parser in (("build", index), ("search", search)):
            dests = {a.dest for a in parser._actions}
            assert set(registry.kind(name).params(which)) <= dests, (name, which)


def test_a_knob_several_kinds_declare_parses_the_same_for_each():
    from lirlab.index import registry

    for which in ("search", "build"):
        seen = {}
        for entry in registry.kinds():
            for name, param in entry.params(which).items():
                first = seen.setdefault(name, param)
                assert (param.type, param.choices) == (first.type, first.choices), (which, name, entry.name)


def test_a_bad_choice_before_help_is_refused_as_argparse_does(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["index", "--kind", "bogus", "--help"])
    assert done.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
