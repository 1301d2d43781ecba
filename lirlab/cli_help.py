"""``lirlab COMMAND --help`` without importing torch: the subcommands' parsers, described once and rebuilt.

The options of ``lirlab index``, ``search``, ``train`` and ``bench`` come from knob declarations
(:class:`~lirlab.params.Param`) that live beside the code they tune (the encoder, the index kinds, the
training loop), in modules that import torch: building those parsers takes seconds. Help needs only
their text, so :data:`CATALOG` (in :mod:`lirlab._cli_help_catalog`, written by
``python -m lirlab.cli_help``) holds each subcommand parser as plain data, which :func:`rebuild` turns
back into an ``argparse`` parser that prints the same help at once. It is derived, never edited by hand:
``tests/test_cli_help.py`` fails, naming the command to run, as soon as a declaration changes and the
catalog no longer matches the parsers the live code builds. Parsing real arguments always uses the
live parsers.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tool", description="Does things.")
>>> _ = parser.add_argument("--level", type=int, default=3, choices=[1, 2, 3], help="how much (default: %(default)s)")
>>> _ = parser.add_argument("--dry-run", action="store_true", help="say, do not do")
>>> copy = rebuild(describe(parser))
>>> copy.format_help() == parser.format_help()
True
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

#: ``../shared`` beside the checkout, where the workplace tools sit (``lirlab bench --build-tool`` names
#: one): help texts name it by this mark, so the catalog is the same in every clone.
_HERE = str(Path(__file__).resolve().parents[2] / "shared")
_HERE_MARK = "<checkout>/../shared"

#: Keys of :data:`CATALOG` beyond the subcommands: the benchmarks with parsers of their own.
NESTED = ("bench train", "bench methods")


class _Described(argparse.Action):
    """An option rebuilt from its description: formats as the original did, stores what it is given."""

    def __init__(self, option_strings, dest, usage_part=None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self._usage_part = usage_part

    def format_usage(self) -> str:
        return self._usage_part or self.option_strings[0]

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)


def _portable(text: str | None) -> str | None:
    return None if text is None else text.replace(_HERE, _HERE_MARK)


def _local(text: str | None) -> str | None:
    return None if text is None else text.replace(_HERE_MARK, _HERE)


def _describe_action(parser: argparse.ArgumentParser, action: argparse.Action) -> dict[str, Any]:
    formatter = parser._get_formatter()
    help_text = formatter._expand_help(action) if action.help else action.help
    metavar = list(action.metavar) if isinstance(action.metavar, tuple) else action.metavar
    described = {
        "option_strings": list(action.option_strings),
        "dest": action.dest,
        "nargs": action.nargs,
        "metavar": metavar,
        "choices": None if action.choices is None else [str(c) for c in action.choices],
        "required": bool(action.required),
        "help": _portable(help_text),
        "usage_part": action.format_usage() if action.option_strings and action.nargs == 0 else None,
    }
    return {key: value for key, value in described.items() if value is not None and value is not False}


def describe(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """A parser as plain data (JSON-able): what its help shows, option by option, help texts expanded.

    Raises
    ------
    ValueError
        The parser holds what the description does not keep (nested subcommands, mutually exclusive
        groups, a formatter that is not one of argparse's).
    """
    if parser._mutually_exclusive_groups:
        raise ValueError(f"{parser.prog}: mutually exclusive groups are not described")
    formatter = parser.formatter_class.__name__
    if getattr(argparse, formatter, None) is not parser.formatter_class:
        raise ValueError(f"{parser.prog}: formatter {formatter} is not one of argparse's")
    groups = []
    for group in parser._action_groups:
        actions = []
        for action in group._group_actions:
            if isinstance(action, argparse._SubParsersAction):
                raise ValueError(f"{parser.prog}: nested subcommands are not described")
            if isinstance(action, argparse._HelpAction):
                continue
            actions.append(_describe_action(parser, action))
        groups.append({"title": group.title, "description": _portable(group.description), "actions": actions})
    return {
        "prog": parser.prog,
        "usage": _portable(parser.usage),
        "description": _portable(parser.description),
        "epilog": _portable(parser.epilog),
        "formatter": formatter,
        "groups": groups,
    }


def rebuild(description: dict[str, Any]) -> argparse.ArgumentParser:
    """An ``argparse`` parser whose help is the described parser's (values are stored as strings)."""
    parser = argparse.ArgumentParser(
        prog=description["prog"],
        usage=_local(description["usage"]),
        description=_local(description["description"]),
        epilog=_local(description["epilog"]),
        formatter_class=getattr(argparse, description["formatter"]),
    )
    defaults = {group.title: group for group in parser._action_groups}
    for group in description["groups"]:
        target = defaults.get(group["title"])
        if target is None:
            target = parser.add_argument_group(group["title"], _local(group["description"]))
        for action in group["actions"]:
            metavar, help_text = action.get("metavar"), action.get("help")
            target._add_action(
                _Described(
                    action["option_strings"],
                    action["dest"],
                    usage_part=action.get("usage_part"),
                    nargs=action.get("nargs"),
                    metavar=tuple(metavar) if isinstance(metavar, list) else metavar,
                    choices=action.get("choices"),
                    required=action.get("required", False),
                    help=None if help_text is None else _local(help_text).replace("%", "%%"),
                    default=argparse.SUPPRESS,
                )
            )
    return parser


def live_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser as the code builds it (imports torch): the source of :data:`CATALOG`."""
    from lirlab import cli

    parsers = {}
    for name in cli.COMMANDS:
        sub = next(
            a for a in cli.build_parser(only=name)._actions if isinstance(a, argparse._SubParsersAction)
        )
        parsers[name] = sub.choices[name]
    parsers["bench train"] = cli._bench_train_parser()
    parsers["bench methods"] = cli._bench_methods_parser()
    return parsers


def catalog_key(argv: list[str]) -> str | None:
    """The :data:`CATALOG` entry whose help ``argv`` asks for (``-h``/``--help`` after a subcommand), or None."""
    if not any(a in ("-h", "--help") for a in argv):
        return None
    if argv[:2] in (["bench", "train"], ["bench", "methods"]):
        return " ".join(argv[:2])
    from lirlab.cli import COMMANDS

    command = next((a for a in argv if not a.startswith("-")), None)
    return command if command in COMMANDS else None


def help_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]] | None:
    """The rebuilt parser that answers ``argv``'s request for help and the arguments it reads, or None
    when ``argv`` asks for no subcommand's help (or the catalog lacks it)."""
    key = catalog_key(argv)
    if key is None:
        return None
    from lirlab._cli_help_catalog import CATALOG

    if key not in CATALOG:
        return None
    return rebuild(CATALOG[key]), argv[len(key.split()) :]


def write_catalog(path: Path | None = None) -> Path:
    """Write :mod:`lirlab._cli_help_catalog` from :func:`live_parsers` (run after changing a declaration)."""
    import pprint

    path = path or Path(__file__).with_name("_cli_help_catalog.py")
    catalog = {name: describe(parser) for name, parser in live_parsers().items()}
    text = (
        '"""What ``lirlab COMMAND --help`` prints, as data: written by ``python -m lirlab.cli_help``, never by hand\n'
        '(see :mod:`lirlab.cli_help`)."""\n\n'
        "# fmt: off\n"
        f"CATALOG = {pprint.pformat(catalog, width=100, sort_dicts=False)}\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


if __name__ == "__main__":
    print(f"wrote {write_catalog()}", file=sys.stderr)
