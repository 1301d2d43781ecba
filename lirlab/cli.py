"""The ``lirlab`` command.

Every subcommand prints one clear line and exits non-zero on bad input; ``lirlab COMMAND --help``
explains each option.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings
from pathlib import Path

from lirlab import notices
from lirlab.benchmark_model import BENCH_MODEL, BUILD_TOOL, benchmark_model

EXAMPLES = """
a first session, offline (the bundled demo corpus; the default model, or MiniLM when offline):
  lirlab demo
  lirlab index --dataset demo --out demo-index
  lirlab search --index demo-index --query "how does a caldera form"
  lirlab search --index demo-index --dataset demo --out run.trec
  lirlab evaluate --run run.trec --dataset demo --measures nDCG@10 RR@10 R@100

a slice of a large collection (the judged documents of the kept queries stay in it):
  lirlab index --dataset ../data/scifact --max-queries 50 --max-docs 1000 --out small-index
  lirlab search --index small-index --dataset ../data/scifact --max-queries 50 --out run.trec

models (--model): a Hugging Face id (default answerdotai/answerai-colbert-small-v1), a local folder
(Stanford ColBERT, PyLate, or any plain transformers encoder), or 'minilm' for the offline weights.
datasets (--dataset): 'demo', a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), or an ir_datasets id.
"""


#: The benchmark datasets' workplace copy: ``../shared/data`` beside this checkout (absent from a plain clone).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``lirlab: error: ... (see lirlab CMD --help)``,
    instead of the usage block before it."""

    def error(self, message: str):
        self.exit(2, f"lirlab: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _add_model_options(p: argparse.ArgumentParser, default: str | None = None) -> None:
    from lirlab.encoder_knobs import DEFAULT_MODEL, ENCODER_PARAMS

    p.add_argument(
        "--model",
        default=default or DEFAULT_MODEL,
        help="hub id, model folder, or 'minilm' for the offline weights (default: %(default)s)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument(
        "--no-augmentation",
        action="store_true",
        help="do not pad queries with [MASK] (for encoders never trained with query augmentation)",
    )
    add_knob_flags(
        p,
        {n: v for n, v in ENCODER_PARAMS.items() if n != "query_augmentation"},
        "encoder settings",
        unset="from the model",
    )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_knob_flags(p: argparse.ArgumentParser, declared: dict, title: str, unset: str | None = None) -> None:
    """One ``--flag`` per declared knob (type, choices and help from its :class:`~lirlab.params.Param`);
    a knob another group already offers is named in this group's description instead.

    ``unset`` says where the value of a knob declared without a default comes from (``"from the
    model"`` for the encoder's); when not given, such a knob's description says it itself."""
    taken = {action.dest for action in p._actions}
    shared = [_flag(name) for name in declared if name in taken]
    group = p.add_argument_group(title, f"also {', '.join(shared)}, listed above" if shared else None)
    for param in declared.values():
        if param.name in taken:
            continue
        kind = {"int": int, "float": float, "str": str}.get(param.type.__name__)
        if param.type is bool:
            group.add_argument(
                _flag(param.name),
                dest=param.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=param.description.replace("%", "%%"),
            )
            continue
        default = unset if param.default is None else param.default
        group.add_argument(
            _flag(param.name),
            dest=param.name,
            type=kind,
            choices=list(param.choices) if param.choices else None,
            default=None,
            metavar=param.name.upper(),
            help=(param.description + (f" (default: {default})" if default is not None else "")).replace(
                "%", "%%"
            ),
        )


def _add_kind_knob_flags(p: argparse.ArgumentParser, which: str, note: str = "") -> None:
    """The ``which`` (search or build) knob flags of every registered kind, a group per kind."""
    from lirlab.index import registry

    for entry in registry.kinds():
        add_knob_flags(p, entry.params(which), f"{entry.name} {which} knobs{note}")


def _given_knobs(args, which: str) -> dict:
    """Every ``which`` (search or build) knob flag the user set, whichever kind declares it."""
    from lirlab.index import registry

    names = {name for entry in registry.kinds() for name in entry.params(which)}
    return {name: getattr(args, name) for name in sorted(names) if getattr(args, name, None) is not None}


def _check_knobs(kind: str, which: str, given: dict) -> None:
    """Refuse, naming the flag, a ``which`` knob the kind does not declare or a value it does not take
    (before any model is loaded or corpus encoded)."""
    from lirlab.index import registry

    declared = registry.kind(kind).params(which)
    foreign = sorted(set(given) - set(declared))
    if foreign:
        takes = ", ".join(map(_flag, declared)) or "none"
        raise ValueError(f"{_flag(foreign[0])} is not a {which} knob of a {kind} index; it takes {takes}")
    _validate_flags(declared, given)


def _validate_flags(declared: dict, given: dict) -> None:
    """:func:`lirlab.params.validate` of the knobs given, each refusal naming the flag (``--doc-maxlen``)."""
    from lirlab import params

    for name, value in given.items():
        try:
            params.validate({name: declared[name]}, {name: value})
        except ValueError as e:
            message = str(e)
            raise ValueError(
                _flag(name) + message[len(name) :] if message.startswith(name) else message
            ) from None


def _check_count(flag: str, value: int, example: str) -> None:
    """Refuse a count flag below 1 (or beyond int32), naming the flag and a value it takes."""
    if not 1 <= value <= 2**31 - 1:
        raise ValueError(f"{flag} must be a whole number >= 1, got {value}; pass e.g. {flag} {example}")


def _check_optional_count(args, flag: str, example: str) -> None:
    value = getattr(args, flag[2:].replace("-", "_"), None)
    if value is not None:
        _check_count(flag, value, example)


def _check_encoder_flags(args) -> None:
    """Refuse a bad encoder setting (``--doc-maxlen 0``) or device (``--device gpu``) before torch loads."""
    from lirlab.encoder_knobs import ENCODER_PARAMS

    _validate_flags(
        ENCODER_PARAMS, {n: getattr(args, n) for n in ENCODER_PARAMS if getattr(args, n, None) is not None}
    )
    _check_device(getattr(args, "device", None))


#: The device types torch names (``torch.device`` refuses any other; whether this machine has one is
#: checked when the model loads).
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "hpu", "mtia", "meta", "xla", "ipu", "privateuseone")


def _check_device(device: str | None) -> None:
    match = re.fullmatch(r"([a-z_]+)(:\d+)?", device or "cpu")
    if match is None or match.group(1) not in DEVICE_TYPES:
        raise ValueError(f"--device {device!r} is not one torch knows (e.g. cpu, cuda, cuda:1, mps)")


def _check_kind_package(kind: str) -> None:
    """Refuse a kind registered by the path of a package that is not installed, before torch loads (the
    kind's own module, which imports torch, is imported later, still before the model)."""
    import importlib.util

    from lirlab.index import registry

    target = registry.kind(kind).index_class
    if isinstance(target, str):
        package = target.partition(":")[0].split(".")[0]
        if importlib.util.find_spec(package) is None:
            raise ImportError(f"the {kind} index kind lives in {package!r}, which is not installed")


def _check_model(name: str | None) -> None:
    """Refuse a ``--model`` path that names no folder, as loading it would, before torch loads."""
    if not name or name == "minilm":
        return
    path = Path(name).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--model {name}: a file; a model is a folder (with config.json) or a hub id")
    if not path.exists() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise ValueError(f"--model {name}: no model folder at {path}")


def _load_dataset(args):
    """The ``--dataset`` collection, sliced by ``--max-queries``/``--max-docs`` where the command takes
    them (:meth:`lirlab.data.Dataset.slice`: the judged documents of the kept queries stay)."""
    from lirlab import data

    dataset = data.load(args.dataset, split=args.split)
    max_queries, max_docs = getattr(args, "max_queries", None), getattr(args, "max_docs", None)
    if max_queries is None and max_docs is None:
        return dataset
    sliced = dataset.slice(max_queries=max_queries, max_docs=max_docs)
    print(
        f"slice of {dataset.name}: {len(sliced.docs)} of {len(dataset.docs)} documents, "
        f"{len(sliced.queries)} of {len(dataset.queries)} queries",
        file=sys.stderr,
    )
    return sliced


def _load_encoder(args, name: str | None = None):
    from lirlab.encoder import ColBERT
    from lirlab.encoder_knobs import DEFAULT_MODEL, ENCODER_PARAMS

    name = name or args.model
    overrides = {n: getattr(args, n) for n in ENCODER_PARAMS if getattr(args, n, None) is not None}
    if getattr(args, "no_augmentation", False):
        overrides["query_augmentation"] = False
    # Only the default model may fall back to the offline MiniLM weights: a model the user named that
    # cannot be loaded is an error.
    encoder = ColBERT.load(name, device=args.device, fallback_to_minilm=name == DEFAULT_MODEL, **overrides)
    print(f"model: {encoder}", file=sys.stderr)
    return encoder


def _cmd_index(args) -> None:
    from lirlab.index import registry
    from lirlab.storage import check_target

    _check_count("--batch-size", args.batch_size, "32")
    _check_optional_count(args, "--max-docs", "1000")
    _check_optional_count(args, "--max-queries", "50")
    given = _given_knobs(args, "build")
    _check_knobs(args.kind, "build", given)
    _check_encoder_flags(args)
    check_target(args.out, overwrite=args.overwrite)  # refuse now, not after encoding the corpus
    dataset = _load_dataset(args)
    _check_kind_package(args.kind)
    _check_model(args.model)
    kind = registry.kind_class(args.kind)  # an optional kind's missing package is said before the model
    encoder = _load_encoder(args)
    index = kind.build(dataset.docs, encoder, batch_size=args.batch_size, **given)
    index.save(args.out, overwrite=args.overwrite)
    print(f"indexed {len(index)} documents into {args.out}", file=sys.stderr)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lirlab")
    except PackageNotFoundError:
        return "unknown"


def _open_index(args, entry):
    """The index at ``--index``: a registered kind's folder (its model from its metadata unless --model
    names one) or a foreign format's (which names no model: --model is required)."""
    from lirlab.index import registry

    if isinstance(entry, registry.Format):
        if not args.model:
            raise ValueError(
                f"{args.index} is a {entry.name} index, which does not name its model for lirlab; pass "
                "--model with the checkpoint that built it"
            )
        return entry.read(args.index, encoder=_load_encoder(args, args.model), device=args.device)
    model = args.model or _recorded_model(args.index)
    if not model:
        raise ValueError(f"{args.index} does not record its model; pass --model")
    return entry.load_class().load(args.index, encoder=_load_encoder(args, model), device=args.device)


def _recorded_model(path: str) -> str | None:
    from lirlab import storage

    return (storage.read_metadata(path).get("model") or {}).get("name")


#: Results per query when ``--k`` is not given: a table to read for ``--query``, a run deep enough for
#: ``lirlab evaluate``'s default R@100 for ``--dataset``.
DEFAULT_K = {"query": 10, "dataset": 100}


def _cmd_search(args) -> None:
    from lirlab.index import registry

    if (args.query is None) == (args.dataset is None):
        raise ValueError("give either --query TEXT (repeatable) or --dataset NAME")
    if args.max_queries is not None and args.dataset is None:
        raise ValueError("--max-queries slices a --dataset's queries; with --query, pass fewer --query")
    if args.out and args.out != "-" and Path(args.out).is_dir():
        raise ValueError(
            f"--out {args.out} is a folder; name a run file, e.g. --out {Path(args.out) / 'run.trec'}"
        )
    k = args.k if args.k is not None else DEFAULT_K["query" if args.dataset is None else "dataset"]
    _check_count("--k", k, "10")
    _check_optional_count(args, "--max-queries", "50")
    _check_device(args.device)
    entry = registry.identify(args.index)
    knobs = _given_knobs(args, "search")
    _check_knobs(entry.opens_as if isinstance(entry, registry.Format) else entry.name, "search", knobs)
    dataset = _load_dataset(args) if args.dataset is not None else None
    _check_model(args.model)
    index = _open_index(args, entry)
    if dataset is None:
        run = index.search(args.query, k=k, **knobs)
    else:
        _warn_if_judged_documents_are_missing(index, dataset)
        run = _search_with_progress(index, dataset.queries, k, knobs)
    from lirlab.results import write_run

    if args.out == "-":
        write_run(run, sys.stdout, format=args.format)
    elif args.out:
        write_run(run, args.out, format=args.format)
        print(
            f"wrote {len(run)} rows for {run.qid.nunique()} queries to {args.out} ({args.format})",
            file=sys.stderr,
        )
    else:
        import pandas as pd

        with pd.option_context("display.max_colwidth", 60, "display.width", 120):
            print(run.to_string(index=False))


def _search_with_progress(index, queries, k: int, knobs: dict):
    """The run of ``queries``, encoded and searched a batch at a time under one progress bar (with ETA)."""
    import pandas as pd
    from tqdm.auto import tqdm

    batch = max(1, getattr(index, "query_batch", 32))
    runs = []
    with tqdm(total=len(queries), desc="search", unit="query") as bar:
        for start in range(0, len(queries), batch):
            chunk = queries[start : start + batch]
            runs.append(index.search(chunk, k=k, **knobs))
            bar.update(len(chunk))
    return pd.concat(runs, ignore_index=True) if runs else index.search(list(queries), k=k, **knobs)


def _warn_if_judged_documents_are_missing(index, dataset) -> None:
    """A notice when most documents judged relevant to the queries are not in the index (an index of a
    naive slice of the corpus: the scores then say little)."""
    docnos = getattr(index, "docnos", None)
    if docnos is None:  # a kind that does not list its documents: nothing to compare
        return
    judged = set(dataset.qrels.doc_id[dataset.qrels.relevance > 0])
    missing = judged - set(docnos)
    if judged and len(missing) * 2 > len(judged):
        warnings.warn(
            f"{len(missing)} of the {len(judged)} documents judged relevant to these {len(dataset.queries)} "
            f"queries are not in the index, so the scores will be low; index the collection whole, or a slice "
            f"that keeps them (lirlab index --max-docs N --max-queries M)",
            notices.LirlabWarning,
            stacklevel=2,
        )


def _cmd_evaluate(args) -> None:
    from lirlab import data
    from lirlab.evaluate import evaluate, parse_measures, per_query_scores

    measures = parse_measures(args.measures)
    if not Path(args.run).is_file():
        raise FileNotFoundError(f"{args.run}: no such run file")
    dataset = data.load(args.dataset, split=args.split)
    from lirlab.results import read_run

    run = read_run(args.run)
    _warn_if_cutoffs_exceed_the_run(measures, run, args.run)
    result = (
        per_query_scores(run, dataset, args.measures)
        if args.per_query
        else evaluate(run, dataset, args.measures)
    )
    if args.tsv:
        result.to_csv(sys.stdout, sep="\t", index=False)
    else:
        print(result.to_string(index=False))


def _warn_if_cutoffs_exceed_the_run(measures, run, path) -> None:
    """A notice when a measure looks deeper than the run goes (R@100 over a run 10 deep)."""
    depth = int(run.groupby("qid").size().max()) if len(run) else 0
    deeper = [str(m) for m in measures if (m.params.get("cutoff") or 0) > depth]
    if deeper:
        warnings.warn(
            f"{', '.join(deeper)} look deeper than {path}, which holds at most {depth} results per query: "
            f"search with --k {max(m.params.get('cutoff') or 0 for m in measures)} for them to mean what they say",
            notices.LirlabWarning,
            stacklevel=2,
        )


def _cmd_demo(args) -> None:
    _check_device(args.device)
    _check_model(args.model)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file; name a folder for the demo's figures and run")
    from lirlab.demo import run_demo

    run_demo(model=args.model, out=args.out, device=args.device)


#: The benchmarks run over a dataset with an encoder: name -> (``module:function``, whether it times
#: ``--queries`` queries one at a time).
DATASET_BENCHMARKS = {
    "core": ("lirlab.bench.core:run_core_benchmark", True),
    "plaid": ("lirlab.bench.plaid:run_plaid_benchmark", True),
    "masks": ("lirlab.bench.masks:run_mask_benchmark", False),
    "compression": ("lirlab.bench.compression:run_compression_benchmark", False),
}


def _cmd_bench(args) -> None:
    from lirlab import data

    if args.which in ("train", "methods", "findings"):  # reached only when options come before the name
        raise ValueError(
            f"'lirlab bench {args.which}' takes its own options after '{args.which}': "
            f"see 'lirlab bench {args.which} --help'"
        )
    if args.which == "reliability":
        from lirlab.bench.reliability import run_reliability

        report = run_reliability(out_dir=args.out)
        print(f"wrote {report['path']}: {report['totals']}")
        return
    if args.which == "memory":
        from lirlab.bench.memory import run_memory_benchmark

        model = benchmark_model(args.model, args.build_tool)
        report = run_memory_benchmark(model=model, out_dir=args.out)
        print(
            f"wrote {report['path']}: {report['build_kib_per_extra_token']} KiB of build memory per extra token"
        )
        return
    if args.dataset is None:
        raise ValueError(
            f"lirlab bench {args.which} needs --dataset: a BEIR folder (e.g. SciFact's) or an ir_datasets id"
        )
    _check_device(args.device)
    _check_encoder_flags(args)
    dataset = data.load(args.dataset, split=args.split)
    encoder = _load_encoder(args, benchmark_model(args.model, args.build_tool))
    target, timed = DATASET_BENCHMARKS[args.which]
    module, _, function = target.partition(":")
    run = getattr(importlib.import_module(module), function)
    result = run(
        dataset, encoder, args.out, cache_dir=args.cache, **({"n_queries": args.queries} if timed else {})
    )
    print(f"wrote {result}")


#: ``lirlab bench`` entries whose module declares its own options (``add_arguments``) and runs them
#: (``run_from_args``): several datasets at once (methods), or knobs of each study's own (findings).
OWN_PARSER_BENCHES = ("methods", "findings")


def _bench_own_parser(name: str) -> argparse.ArgumentParser:
    """The parser of ``lirlab bench <name>``, one of :data:`OWN_PARSER_BENCHES`, from its module."""
    module = importlib.import_module(f"lirlab.bench.{name}")
    p = _Parser(
        prog=f"lirlab bench {name}",
        description=module.__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(p)
    p.set_defaults(func=module.run_from_args)
    return p


def _bench_train_parser() -> argparse.ArgumentParser:
    """``lirlab bench train``: the recipe of :mod:`lirlab.bench.train`, whose options differ from the
    other benchmarks' (training data, test sets, minutes, phases), so it gets a parser of its own."""
    from lirlab.bench import train as recipe

    p = _Parser(
        prog="lirlab bench train",
        description=recipe.__doc__.replace("``", ""),
        epilog=BENCH_TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    recipe.add_arguments(p)
    p.set_defaults(func=_cmd_bench_train)
    return p


BENCH_TRAIN_EXAMPLES = """\
examples:
  # the whole recipe (about 40 minutes of training, then the evaluation), figures to benchmarks/results/
  lirlab bench train
  # mine and train now, evaluate later (each phase resumes from what the cache holds)
  lirlab bench train --phases mine train --lr 1e-4 --mine-doc-maxlen 64
  lirlab bench train --phases evaluate
  # a quick look: 2 minutes per run, one recipe
  lirlab bench train --minutes 2 --snapshot-minutes 1 --recipes nomask --cache /tmp/bench-train
"""


def _cmd_bench_train(args) -> None:
    from lirlab.bench.train import run_from_args

    run_from_args(args)


#: Every subcommand and its one-line description (``lirlab --help`` lists them without importing torch).
COMMANDS = {
    "index": "encode a corpus and write an index folder",
    "search": "search an index with text queries or a dataset's queries",
    "evaluate": "score a run against a dataset's qrels with ir_measures",
    "demo": "run the quickstart end to end on the demo corpus and write its figures",
    "train": "fine-tune a ColBERT model (contrastive with hard negatives, or distillation)",
    "bench": "benchmarks saved as JSON/CSV with the machine described",
}

_ALL = object()


def build_parser(only=_ALL) -> argparse.ArgumentParser:
    """The ``lirlab`` parser.

    Parameters
    ----------
    only : str or None, optional
        Give the options of this subcommand alone (the others are listed by name); ``None``: list the
        subcommands only, which is all ``lirlab --help`` needs. Default: every subcommand with its options.
    """
    parser = _Parser(
        prog="lirlab",
        description="lirlab: encode, index, search, explain and measure late-interaction (ColBERT) retrieval.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lirlab {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def wanted(name: str) -> bool:
        if only is _ALL or only == name:
            return True
        sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])
        return False

    if wanted("index"):
        _add_index(sub)
    if wanted("search"):
        _add_search(sub)
    if wanted("evaluate"):
        _add_evaluate(sub)
    if wanted("demo"):
        _add_demo(sub)
    if wanted("train"):
        from lirlab.train.cli import register as register_train

        register_train(sub)
    if wanted("bench"):
        _add_bench(sub)
    return parser


def _kind_help() -> str:
    from lirlab.index import registry

    return "; ".join(f"{entry.name}: {entry.summary}" for entry in registry.kinds()).replace("%", "%%")


def _add_index(sub) -> None:
    from lirlab.index import registry

    p = sub.add_parser("index", help=COMMANDS["index"], description=COMMANDS["index"])
    p.add_argument("--dataset", required=True, help="'demo', a BEIR folder, or an ir_datasets id")
    p.add_argument("--split", default="test", help="qrels split of a BEIR folder (default: %(default)s)")
    p.add_argument(
        "--out", required=True, help="index folder to write (an existing index is replaced atomically)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out even if it is a folder lirlab did not write (its files are moved aside, never deleted)",
    )
    p.add_argument(
        "--kind",
        choices=registry.kind_names(),
        default="flat",
        help=f"the index kind (default: %(default)s): {_kind_help()}",
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="documents per forward pass (default: %(default)s)"
    )
    _add_slice_options(p, docs=True)
    _add_model_options(p)
    _add_kind_knob_flags(p, "build")
    p.set_defaults(func=_cmd_index)


def _add_search(sub) -> None:
    from lirlab.index import registry

    foreign = ", ".join(registry.format_names())
    p = sub.add_parser("search", help=COMMANDS["search"], description=COMMANDS["search"])
    p.add_argument(
        "--index",
        required=True,
        help=f"index folder written by 'lirlab index' or lirlab (any kind: {_kind_help()}), or by another "
        f"tool ({foreign}: those need --model; documents are named by their passage ids)",
    )
    p.add_argument("--query", action="append", help="query text (repeat for several)")
    p.add_argument("--dataset", help="search all queries of this dataset instead")
    p.add_argument("--split", default="test", help="queries split of a BEIR folder (default: %(default)s)")
    _add_slice_options(p, docs=False)
    p.add_argument(
        "--k",
        type=int,
        default=None,
        help=f"results per query (default: {DEFAULT_K['query']} with --query, {DEFAULT_K['dataset']} with "
        "--dataset: deep enough for the R@100 'lirlab evaluate' reports)",
    )
    p.add_argument(
        "--out", help="write the run to this file ('-': standard output) instead of printing a table"
    )
    p.add_argument(
        "--format",
        choices=["trec", "tsv"],
        default="trec",
        help="run file format: TREC 'qid Q0 docno rank score tag' (trec_eval, ir_measures) or TSV with a header "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--model", default=None, help="encoder for the queries (default: the one recorded in the index)"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--no-augmentation", action="store_true", help="do not pad queries with [MASK]")
    _add_kind_knob_flags(p, "search", " (unset ones follow k)")
    p.set_defaults(func=_cmd_search)


def _add_slice_options(p: argparse.ArgumentParser, docs: bool) -> None:
    p.add_argument(
        "--max-queries",
        type=int,
        default=None,
        help="keep the dataset's first N queries (default: all)"
        + (" and every document judged for them" if docs else ""),
    )
    if docs:
        p.add_argument(
            "--max-docs",
            type=int,
            default=None,
            help="index about N documents: those judged for the kept queries, then others in corpus order "
            "(default: all; scores on a slice run higher than on the whole corpus)",
        )


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help=COMMANDS["evaluate"], description=COMMANDS["evaluate"])
    p.add_argument("--run", required=True, help="TREC run file (or TSV) from 'lirlab search --out'")
    p.add_argument("--dataset", required=True, help="'demo', a BEIR folder, or an ir_datasets id (its qrels)")
    p.add_argument("--split", default="test", help="qrels split of a BEIR folder (default: %(default)s)")
    p.add_argument(
        "--measures",
        nargs="+",
        default=["nDCG@10", "RR@10", "R@100"],
        help="ir_measures names (default: %(default)s; a cutoff deeper than the run is warned about)",
    )
    p.add_argument("--per-query", action="store_true", help="one row per query and measure")
    p.add_argument("--tsv", action="store_true", help="print tab-separated values instead of a table")
    p.set_defaults(func=_cmd_evaluate)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help=COMMANDS["demo"], description=COMMANDS["demo"])
    p.add_argument(
        "--out", default="lirlab-demo", help="folder for figures and the run (default: %(default)s)"
    )
    p.add_argument("--model", default=None, help="default: the default model, or MiniLM when offline")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.set_defaults(func=_cmd_demo)


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help=COMMANDS["bench"],
        description=COMMANDS["bench"],
        epilog="'lirlab bench train', 'lirlab bench methods' and 'lirlab bench findings' take their own "
        "options: see 'lirlab bench train --help', 'lirlab bench methods --help' and "
        "'lirlab bench findings --help'.",
    )
    p.add_argument(
        "which",
        choices=[*DATASET_BENCHMARKS, "reliability", "memory", "methods", "train", "findings"],
        help="core: encoding and exhaustive MaxSim; plaid: the compressed index; "
        "masks: nDCG@10 as [MASK] query augmentation varies; compression: nbits against reconstruction and ranking; "
        "reliability: kill -9 and racing-reader trials of index saves; memory: PLAID build peak RSS on 1x/4x/16x the demo; "
        "methods: PLAID, WARP, MUVERA, token pooling and exhaustive MaxSim in one sweep and chart "
        "(its own options, see 'lirlab bench methods --help'); "
        "train: the training recipe (two 20-minute NFCorpus runs, with and without [MASK] padding, "
        "scored before and after; its own options, see 'lirlab bench train --help'); "
        "findings: one study of issue 30 (LIMIT, query length, the [MASK] padding gap) with its figure "
        "(its own options, see 'lirlab bench findings --help')",
    )
    workplace_tool = f"default: {BUILD_TOOL}" if BUILD_TOOL.is_file() else "none in this checkout"
    p.add_argument(
        "--build-tool",
        default=None,
        help=f"script that builds {BENCH_MODEL} when it is missing ({workplace_tool})",
    )
    scifact = SHARED_DATA / "scifact"
    p.add_argument(
        "--dataset",
        default=str(scifact) if scifact.is_dir() else None,
        help="a BEIR folder or an ir_datasets id, for core, plaid, masks and compression (default: "
        + ("%(default)s)" if scifact.is_dir() else "none: name one)"),
    )
    p.add_argument("--split", default="test", help="qrels split of a BEIR folder (default: %(default)s)")
    p.add_argument(
        "--queries", type=int, default=100, help="queries timed one at a time (default: %(default)s)"
    )
    p.add_argument("--out", default="benchmarks/results", help="results folder (default: %(default)s)")
    p.add_argument(
        "--cache",
        default="benchmarks/cache",
        help="where encoded corpora are kept between benchmarks that do not time encoding (default: %(default)s)",
    )
    _add_model_options(p, default=BENCH_MODEL)
    p.set_defaults(func=_cmd_bench)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean bad input (one line, exit 2). lirlab's own classes are looked up only in
    modules already imported: a command that raised one has imported it, and ``--help`` imports none.
    An ImportError is an optional kind's package missing (its message says what to install)."""
    errors = [ValueError, KeyError, FileNotFoundError, RuntimeError, OSError, ImportError]
    for module, name in (("lirlab.encoder", "ModelLoadError"), ("lirlab.storage", "ArtifactError")):
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None:
            errors.append(cls)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["bench", "train"]:
        args = _bench_train_parser().parse_args(argv[2:])
    elif argv[:1] == ["bench"] and argv[1:2] and argv[1] in OWN_PARSER_BENCHES:
        args = _bench_own_parser(argv[1]).parse_args(argv[2:])
    else:
        # Only the subcommand named gets its options: `lirlab --help`, `lirlab --version` and a mistyped
        # command answer without reading any declaration.
        command = next((a for a in argv if not a.startswith("-")), None)
        args = build_parser(only=command if command in COMMANDS else None).parse_args(argv)
    # lirlab's notices (a fallback model, a run shallower than a measure) print as one line on stderr
    try:
        with notices.one_line_notices():
            args.func(args)
    except Exception as e:
        if not isinstance(e, _user_errors()):
            raise
        print(f"lirlab: error: {_one_line(e)}", file=sys.stderr)
        return 2
    return 0


def _one_line(error: BaseException) -> str:
    """The message of ``error`` on one line, saying what and where (and for --out, the flag to pass)."""
    if isinstance(error, KeyError):
        key = error.args[0] if error.args else ""
        message = key if isinstance(key, str) and " " in key else f"a required field {key!r} is missing"
    elif isinstance(error, OSError) and error.errno is not None and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        message = f"{where}{error.strerror}"
        if isinstance(error, IsADirectoryError):
            message += " (it is a folder: name a file inside it)"
    else:
        message = str(error)
    message = message.replace("pass overwrite=True", "pass --overwrite")
    # a path of bytes that are not UTF-8 reaches Python as lone surrogates, which no stream can encode
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return " ".join(message.split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
