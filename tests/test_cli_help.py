"""The command line answers --help at once and documents every subcommand and option."""

from __future__ import annotations

import argparse
import subprocess
import sys

from lirlab import cli


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
    parsers["bench methods"] = cli._bench_methods_parser()
    parsers["bench methods"] = cli._bench_methods_parser()
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
