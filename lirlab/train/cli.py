"""``lirlab train``: the command-line face of :mod:`lirlab.train` (wired in by :func:`register`)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from lirlab.benchmark_model import BENCH_MODEL
from lirlab.index import registry
from lirlab.train.knobs import TRAIN_KNOBS

DESCRIPTION = """\
Fine-tune a late-interaction (ColBERT) model on training pairs, on CPU or CUDA.

Each step takes --batch-size training queries, one judged-relevant document for each (its positive)
and --negatives documents it should rank lower: hard negatives mined with lirlab's own index from the
starting model (the top --mine-depth documents of the query that are not judged relevant), or random
documents with --mine none. Every query is scored by MaxSim against its own documents and, with
in-batch negatives (the default), against every other document of the batch; the loss is the
cross-entropy of the positive. With --teacher (scores from a cross-encoder), the loss is instead the
KL divergence between the teacher's and the model's score distributions over each query's documents.

Queries are trained as the model will see them: --query-maxlen, [MASK] padding on or off
(--mask-padding / --no-mask-padding) and --attend-to-mask-tokens. A plain Hugging Face encoder gets
the markers [unused0]/[unused1] (or new [Q]/[D] tokens when its vocabulary lacks them) and a --dim
projection.

The out folder receives checkpoint-<step>/ folders, each holding the model in the colbert-ai layout
(stanford/) and the PyLate layout (pylate/) -- load either with ColBERT.load(folder) or the tool itself
-- plus the optimizer state to resume from. An out folder that already holds a run is refused unless
--overwrite (start over) or --resume (continue from its last checkpoint with its saved settings).
"""

EPILOG = """\
examples:
  # 200 steps on NFCorpus's training pairs, hard negatives mined with a flat index, [MASK] padding to 32
  lirlab train --model benchmarks/models/minilm-colbert --dataset ../shared/data/nfcorpus \\
      --out runs/nfcorpus --steps 200 --batch-size 16 --lr 5e-5 --query-maxlen 32 --mask-padding

  # the same within a 20-minute budget, without [MASK] padding, evaluating on the dev split every 50 steps
  lirlab train --model benchmarks/models/minilm-colbert --dataset ../shared/data/nfcorpus --out runs/nopad \\
      --steps 260 --max-minutes 20 --no-mask-padding --eval-dataset ../shared/data/nfcorpus --eval-split dev \\
      --eval-every 50

  # continue an interrupted run; distil from a cross-encoder's scores (qid, docno, score per line)
  lirlab train --dataset ../shared/data/nfcorpus --out runs/nfcorpus --resume
  lirlab train --dataset ../shared/data/nfcorpus --out runs/kd --teacher ce-scores.tsv --negatives 7
"""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "train",
        help="fine-tune a ColBERT model (contrastive with hard negatives, or distillation)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default=BENCH_MODEL,
        help="starting checkpoint: a folder (Stanford, PyLate or plain HF), a hub id, or 'minilm' "
        "(default: %(default)s, the MiniLM-ColBERT benchmark model, built on first use)",
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="training pairs: a BEIR folder (its qrels/<split>.tsv) or an ir_datasets id",
    )
    p.add_argument("--split", default="train", help="qrels split of a BEIR folder (default: %(default)s)")
    p.add_argument("--out", required=True, help="run folder for checkpoints and the log")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument(
        "--mine",
        choices=[*registry.kind_names(), "none"],
        default="flat",
        help="index kind used to mine hard negatives from the starting model; 'none' draws random "
        "documents (default: %(default)s)",
    )
    p.add_argument(
        "--mine-depth",
        type=int,
        default=50,
        help="mined negatives kept per query, from the top of its ranking (default: %(default)s)",
    )
    p.add_argument(
        "--mine-padding",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="mine with [MASK]-padded queries (default: off, which ranks best for a model not "
        "yet trained with padding)",
    )
    p.add_argument(
        "--negatives-from",
        default=None,
        help="reuse a mined set (a run's negatives/ folder or a negatives.tsv) instead of mining",
    )
    p.add_argument(
        "--teacher",
        default=None,
        help="JSONL or TSV of qid, docno, score from a teacher: distillation instead of contrastive",
    )
    p.add_argument(
        "--eval-dataset", default=None, help="dev set for --eval-every (BEIR folder or ir_datasets id)"
    )
    p.add_argument("--eval-split", default="dev", help="qrels split of --eval-dataset (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="start over in an out folder holding a run")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, knob in TRAIN_KNOBS.items():
        kwargs = {"dest": name, "default": argparse.SUPPRESS}
        if name == "query_augmentation":
            p.add_argument(
                "--mask-padding",
                action="store_const",
                const=True,
                **kwargs,
                help="pad training queries with [MASK] to --query-maxlen (default: the checkpoint's)",
            )
            p.add_argument(
                "--no-mask-padding",
                action="store_const",
                const=False,
                **kwargs,
                help="do not pad training queries",
            )
            continue
        if knob.type is bool:
            p.add_argument(
                _flag(name),
                action=argparse.BooleanOptionalAction,
                **kwargs,
                help=knob.description + ("" if knob.default is None else f" (default: {knob.default})"),
            )
            continue
        default = "" if knob.default is None else f" (default: {knob.default})"
        p.add_argument(
            _flag(name),
            type=knob.type,
            metavar=name.upper(),
            **kwargs,
            help=f"{knob.description}{default}".replace("%", "%%"),
        )
    p.set_defaults(func=run)
    return p


def run(args) -> None:
    """The ``train`` handler: load, check, mine, train; every problem is one ValueError line."""
    from pathlib import Path

    from lirlab import data
    from lirlab.benchmark_model import benchmark_model
    from lirlab.encoder import ColBERT
    from lirlab.train import Negatives, TrainingData, mine_negatives, read_teacher_scores, train
    from lirlab.train.loop import _check_out

    knobs = {name: getattr(args, name) for name in TRAIN_KNOBS if hasattr(args, name)}
    for name, value in knobs.items():  # a bad flag is reported before any data or model loads
        try:
            TRAIN_KNOBS[name].validate(value)
        except ValueError as error:
            raise ValueError(_flag(name) + str(error).removeprefix(name)) from None
    if args.mine_depth < 1:
        raise ValueError(f"--mine-depth must be >= 1, got {args.mine_depth}")
    if not args.overwrite:  # refuse a used --out now, before loading data and mining negatives
        with _in_flag_words():
            _check_out(Path(args.out), overwrite=False, resume=args.resume)
    model = benchmark_model(args.model)
    dataset = data.load(args.dataset, split=args.split)
    pairs = TrainingData.from_dataset(dataset)
    if args.teacher:
        pairs = pairs.with_teacher(read_teacher_scores(args.teacher), min_candidates=2)
    eval_dataset = data.load(args.eval_dataset, split=args.eval_split) if args.eval_dataset else None
    encoder = ColBERT.load(model, device=args.device)
    print(f"model: {encoder}\ndata: {pairs}", file=sys.stderr)
    mined = None
    if args.resume or pairs.teacher:
        pass
    elif args.negatives_from:
        mined = Negatives.load(args.negatives_from, pairs)
    elif args.mine != "none" and knobs.get("negatives", TRAIN_KNOBS["negatives"].default) > 0:
        from lirlab.train.model import prepare_encoder

        settings = {k: knobs[k] for k in ("query_maxlen", "doc_maxlen") if k in knobs}
        miner = prepare_encoder(encoder, **settings)
        miner = miner.with_config(
            query_maxlen=miner.config.query_maxlen, query_augmentation=bool(args.mine_padding)
        )
        mined = mine_negatives(
            miner, pairs, depth=args.mine_depth, kind=args.mine, progress=not args.no_progress
        )
    with _in_flag_words():
        result = _train(train, encoder, pairs, args, mined, eval_dataset, knobs)
    last = result.log[result.log.get("loss").notna()] if "loss" in result.log else result.log
    loss = f", last loss {last.loss.iloc[-1]:.4f}" if len(last) else ""
    print(
        f"trained to step {result.steps} ({result.seconds / 60:.1f} min){loss}; checkpoint: {result.checkpoint}"
    )


@contextlib.contextmanager
def _in_flag_words():
    """Re-word the Python API's advice (``overwrite=True``, ``resume``) as the command's flags."""
    try:
        yield
    except ValueError as error:
        message = str(error)
        for api, flag in (
            ("overwrite=True (--overwrite)", "--overwrite"),
            ("resume=True (--resume)", "--resume"),
            ("drop resume", "drop --resume"),
            ("of overwrite (start over) and resume (continue)", "of --overwrite and --resume"),
        ):
            message = message.replace(api, flag)
        raise ValueError(message) from error


def _train(train, encoder, pairs, args, mined, eval_dataset, knobs):
    return train(
        encoder,
        pairs,
        args.out,
        mined=mined,
        eval_dataset=eval_dataset,
        overwrite=args.overwrite,
        resume=args.resume,
        progress=not args.no_progress,
        **knobs,
    )
