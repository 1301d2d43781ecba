"""``lirlab bench train``: the issue-15 recipe end to end, on this machine, within a wall-clock budget.

1. Start from the MiniLM-ColBERT checkpoint (the peer figures' model). Encode NFCorpus once with it: the
   same flat index scores the untrained model on NFCorpus test and mines hard negatives for the
   NFCorpus train queries (top ``mine_depth``, judged positives excluded, mined without ``[MASK]``
   padding, where the untrained model ranks best). The mined set is saved with the run.
2. Train two models from it for ``minutes`` of training steps each, one after the other: queries padded
   with ``[MASK]`` to 32 (``mask32``), and not padded (``nomask``). Checkpoints every
   ``snapshot_minutes`` give the training-time curve.
3. Score every model (untrained, each snapshot, both finals) by exhaustive MaxSim, each with and
   without ``[MASK]`` padding to 32, on NFCorpus test and (the start and final models) SciFact test,
   always with the checkpoint's own document length (180).
4. Run the ``[MASK]`` analysis on the start and both final models on NFCorpus test: the ``query_maxlen``
   curve with and without attention to ``[MASK]``, and the term-weighting summary over the first
   ``weighting_queries`` queries (where each ``[MASK]`` points, and how its weight follows IDF).

Results go to ``<out>/train.json`` (+ ``train.<table>.csv``), rewritten after every phase, so a
partial run still reports what it measured; checkpoints and encoded corpora go to ``<cache>/train``
(ignored by git). A phase already done (its checkpoint or cached index present) is not redone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import torch

from lirlab.analysis.masks import mask_weighting, padding_gap, query_maxlen_curve, term_statistics
from lirlab.bench.record import cached_flat_index, load_average, peak_rss_mib, save_results
from lirlab.benchmark_model import BENCH_MODEL, benchmark_model
from lirlab.data import Dataset

MEASURES = ("nDCG@10", "R@100")
CURVE_LENGTHS = (0, 8, 16, 32, 48, 64, 128)
RECIPES = {
    "mask32": {"query_maxlen": 32, "query_augmentation": True, "attend_to_mask_tokens": False},
    "nomask": {"query_maxlen": 32, "query_augmentation": False, "attend_to_mask_tokens": False},
}


def score(encoder, dataset: Dataset, index, k: int = 100) -> dict:
    """nDCG@10 and R@100 of ``encoder``'s weights with and without ``[MASK]`` padding to 32, and their gaps."""
    return padding_gap(encoder, dataset, index, padding_to=32, measures=MEASURES, k=k)


def weighting_summary(encoder, dataset: Dataset, index, n_queries: int = 100, top_k: int = 10) -> dict:
    """Where ``[MASK]``s point over ``n_queries`` queries, and how their weight follows IDF."""
    stats = term_statistics(index)
    terms, masks, same, shares = [], [], [], []
    for query in dataset.queries[:n_queries]:
        w = mask_weighting(encoder, query, index, top_k=top_k, statistics=stats)
        if not w.n_masks:
            continue
        terms.append(w.terms.assign(qid=query.qid))
        masks.append(w.assignments.assign(qid=query.qid))
        m = w.matches
        own = m[~m.is_mask].set_index(["docno", "position"])["doc_position"]
        mask_rows = m[m.is_mask]
        keys = list(zip(mask_rows.docno, mask_rows.term_position))
        same.append((mask_rows.doc_position.values == own.reindex(keys).values).mean())
        shares.append(1 - w.score_without_masks / w.score if w.score else 0.0)
    if not terms:
        return {}
    t = pd.concat(terms)
    a = pd.concat(masks)
    real = t[~t.special]
    spearman = real[["idf", "mask_share"]].corr(method="spearman").iloc[0, 1]
    spearman_own = real[["idf", "own"]].corr(method="spearman").iloc[0, 1]
    special_tokens = set(t[t.special].position.astype(str) + t[t.special].qid)
    to_special = (a.term_position.astype(str) + a.qid).isin(special_tokens).mean()
    return {
        "queries": len(terms),
        "top_k": top_k,
        "masks_per_query": float(len(a) / len(terms)),
        "mean_mask_to_nearest_term_cosine": float(a.cosine.mean()),
        "share_of_masks_nearest_a_special_token": float(to_special),
        "share_of_mask_matches_on_the_same_doc_token_as_their_term": float(pd.Series(same).mean()),
        "share_of_score_from_masks": float(pd.Series(shares).mean()),
        "spearman_idf_vs_mask_share": float(spearman),
        "spearman_idf_vs_own_contribution": float(spearman_own),
    }


#: PyLate 1.6.0's contrastive recipe on this machine (the issue's reference), NFCorpus test nDCG@10.
PYLATE_REFERENCE = {"pad32": {0: 0.0932, 20: 0.2965}, "nopad": {0: 0.3278, 20: 0.3442}}


def plot_train_results(results: dict, in_domain: str = "nfcorpus"):
    """The recipe's figure: loss against training time, in-domain nDCG@10 (with and without ``[MASK]``
    padding) against training time beside the PyLate reference, and the ``query_maxlen`` curves.

    ``results`` is what ``train.json`` holds; missing parts leave their panel empty.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(16, 4.2))
    loss_ax, quality_ax, curve_ax = figure.subplots(1, 3)
    colors = {"start": "gray", "mask32": "C0", "nomask": "C1"}
    loss = pd.DataFrame(results.get("loss_curve") or [])
    for recipe, rows in loss.groupby("model") if len(loss) else []:
        rows = rows.sort_values("step")
        minutes = rows.train_seconds / 60
        loss_ax.plot(minutes, rows.loss, ".", alpha=0.25, color=colors.get(recipe))
        smooth = rows.loss.rolling(10, min_periods=1).mean()
        loss_ax.plot(minutes, smooth, "-", color=colors.get(recipe), label=f"{recipe} ({len(rows)} steps)")
    loss_ax.set(xlabel="training minutes", ylabel="contrastive loss (mean of 10 steps)", title="loss")
    if loss_ax.get_legend_handles_labels()[0]:
        loss_ax.legend(frameon=False, fontsize=8)

    quality = pd.DataFrame(results.get("quality") or [])
    if len(quality):
        quality = quality[quality.dataset == in_domain]
    for recipe in ("mask32", "nomask"):
        rows = quality[quality.model.isin([recipe, "start"])] if len(quality) else quality
        if not len(rows) or recipe not in set(rows.model):
            continue
        rows = rows.sort_values("train_minutes")
        for variant, style in (("pad32", "o-"), ("nopad", "s--")):
            quality_ax.plot(
                rows.train_minutes,
                rows[f"nDCG@10 {variant}"],
                style,
                color=colors[recipe],
                label=f"trained {recipe}, scored {variant}",
            )
    for variant, marker in (("pad32", "*"), ("nopad", "P")):
        points = PYLATE_REFERENCE[variant]
        quality_ax.plot(
            list(points),
            list(points.values()),
            marker,
            color="black",
            markersize=10,
            linestyle=":",
            label=f"PyLate reference, scored {variant}",
        )
    quality_ax.set(
        xlabel="training minutes", ylabel=f"nDCG@10, {in_domain} test", title="quality against training time"
    )
    if quality_ax.get_legend_handles_labels()[0]:
        quality_ax.legend(frameon=False, fontsize=7)

    curves = pd.DataFrame(results.get("mask_curves") or [])
    for (recipe, attend), rows in curves.groupby(["model", "attend_to_mask_tokens"]) if len(curves) else []:
        rows = rows[rows.masks_used | (rows.query_maxlen == 0)].sort_values("query_maxlen")
        curve_ax.plot(
            rows.query_maxlen,
            rows["nDCG@10"],
            "o-" if not attend else "x--",
            color=colors.get(recipe),
            label=f"{recipe}, {'attending to' if attend else 'not attending to'} [MASK]",
        )
    curve_ax.set(
        xlabel="query_maxlen (0: no padding)", ylabel=f"nDCG@10, {in_domain} test", title="[MASK] curves"
    )
    if curve_ax.get_legend_handles_labels()[0]:
        curve_ax.legend(frameon=False, fontsize=7)
    figure.tight_layout()
    return figure


def run_train_benchmark(
    start_model: str | Path,
    train_data: Dataset,
    test_sets: list[Dataset],
    out_dir: str | Path,
    cache_dir: str | Path = "benchmarks/cache",
    minutes: float = 20.0,
    snapshot_minutes: float = 10.0,
    steps: int = 260,
    batch_size: int = 16,
    negatives: int = 1,
    lr: float = 5e-5,
    warmup: float = 0.05,
    train_doc_maxlen: int = 128,
    mine_depth: int = 50,
    mine_doc_maxlen: int = 180,
    weighting_queries: int = 100,
    recipes: tuple[str, ...] = ("mask32", "nomask"),
    phases: tuple[str, ...] = ("mine", "train", "evaluate"),
    device: str = "cpu",
    seed: int = 12345,
) -> Path:
    """Run the recipe (see the module notes) and save ``train.json``; returns its path.

    Every measurement is cached as a small JSON file under ``<cache>/train/measured`` and
    ``train.json`` is rebuilt from all of them after each one, so several invocations (say, the
    evaluation of a finished run while the next run trains, ``phases=("evaluate",)``) add up.
    """
    from lirlab.encoder import ColBERT
    from lirlab.train import Negatives, TrainingData, checkpoints, mine_negatives, train

    cache = Path(cache_dir) / "train"
    measured = cache / "measured"
    settings = {
        "minutes": minutes,
        "snapshot_minutes": snapshot_minutes,
        "steps_schedule": steps,
        "batch_size": batch_size,
        "negatives": negatives,
        "in_batch": True,
        "lr": lr,
        "warmup": warmup,
        "train_doc_maxlen": train_doc_maxlen,
        "eval_doc_maxlen": "the start checkpoint's (180)",
        "mine_depth": mine_depth,
        "mine_doc_maxlen": mine_doc_maxlen,
        "mined_with": "start model, flat index, queries without [MASK] padding",
        "seed": seed,
        "torch_threads": torch.get_num_threads(),
    }
    in_domain = next((d for d in test_sets if d.name == train_data.name), test_sets[0])
    start = ColBERT.load(start_model, device=device)

    def cached(name: str, compute):
        file = measured / f"{name}.json"
        if file.is_file():
            return json.loads(file.read_text())
        began = time.perf_counter()
        value = compute()
        value = {
            "value": value,
            "seconds": time.perf_counter() - began,
            "torch_threads": torch.get_num_threads(),
            "load_average": load_average(),
        }
        measured.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(value, default=float))
        report()
        return value

    def report() -> Path:
        results = {
            "start_model": str(start_model),
            "settings": settings,
            "note": "minutes are wall-clock of training steps; each measurement and training run "
            "records the 1/5/15-minute load average when it ended (2 cores: above 2 means other work)",
            "quality": [],
            "training": [],
            "loss_curve": [],
            "mask_curves": [],
            "weighting": [],
            "seconds": {},
            "load_average": {},
        }
        for file in sorted(measured.glob("*.json")) if measured.is_dir() else []:
            kind, _, tag = file.stem.partition("__")
            entry = json.loads(file.read_text())
            results["seconds"][file.stem] = entry["seconds"]
            if "load_average" in entry:
                results["load_average"][file.stem] = entry["load_average"]
            value = entry["value"]
            if kind == "quality":
                results["quality"].append(value)
            elif kind == "maskcurve":
                results["mask_curves"] += value
            elif kind == "weighting":
                results["weighting"].append(value)
        for recipe in RECIPES:
            run_dir = cache / recipe
            if (run_dir / "log.jsonl").is_file():
                log = [
                    json.loads(line)
                    for line in (run_dir / "log.jsonl").read_text().splitlines()
                    if line.strip()
                ]
                results["loss_curve"] += [{"model": recipe, **r} for r in log if "loss" in r]
            saved = checkpoints(run_dir)
            if saved:
                state = json.loads((saved[-1] / "trainer_state.json").read_text())
                knobs = json.loads((run_dir / "lirlab-train.json").read_text())["knobs"]
                results["training"].append(
                    {
                        "model": recipe,
                        "steps_done": state["step"],
                        "final": bool(state.get("final")),
                        "train_minutes": state["train_seconds"] / 60,
                        "seconds_per_step": state["train_seconds"] / max(state["step"], 1),
                        "checkpoints": [c.name for c in saved],
                        "load_average_at_end": state.get("load_average_at_end"),
                        **{
                            k: knobs[k]
                            for k in (
                                "query_maxlen",
                                "query_augmentation",
                                "attend_to_mask_tokens",
                                "doc_maxlen",
                                "batch_size",
                                "negatives",
                                "in_batch",
                                "lr",
                                "warmup",
                                "steps",
                                "max_minutes",
                                "temperature",
                                "seed",
                            )
                        },
                    }
                )
        results["peak_rss_mib"] = peak_rss_mib()
        path = save_results("train", results, out_dir, device=device)
        if results["loss_curve"] or results["quality"] or results["mask_curves"]:
            from lirlab.plots import figure_png

            figure = plot_train_results(results, in_domain.name)
            path.with_suffix(".png").write_bytes(figure_png(figure, dpi=80))
        return path

    def index_of(encoder, dataset, tag):
        return cached_flat_index(dataset, encoder, cache / "indexes" / tag, batch_size=32)

    def quality(encoder, tag, step, seconds, dataset):
        def compute():
            row = {"model": tag, "dataset": dataset.name, "step": step, "train_minutes": seconds / 60}
            row.update(score(encoder, dataset, index_of(encoder, dataset, f"{tag}-{step}")))
            return row

        return cached(f"quality__{tag}-{step}-{dataset.name}", compute)

    def mask_analysis(encoder, tag, step, parts=("curve", "weighting")):
        def curve():
            index = index_of(encoder, in_domain, f"{tag}-{step}")
            rows = query_maxlen_curve(
                encoder, in_domain, index, query_maxlens=CURVE_LENGTHS, measures=MEASURES, progress=False
            )
            return rows.assign(model=tag, step=step).to_dict("records")

        def weighting():
            index = index_of(encoder, in_domain, f"{tag}-{step}")
            padded = encoder.with_config(
                query_maxlen=32, query_augmentation=True, attend_to_mask_tokens=False
            )
            return {
                "model": tag,
                "step": step,
                "dataset": in_domain.name,
                **weighting_summary(padded, in_domain, index, weighting_queries),
            }

        if "curve" in parts:
            cached(f"maskcurve__{tag}-{step}", curve)
        if "weighting" in parts:
            cached(f"weighting__{tag}-{step}", weighting)

    data = TrainingData.from_dataset(train_data)
    mined_dir = cache / "negatives"
    if "mine" in phases and not (mined_dir / "negatives.tsv").is_file():
        miner = start.with_config(query_maxlen=0, doc_maxlen=mine_doc_maxlen)
        index = (
            index_of(miner, in_domain, "miner")
            if mine_doc_maxlen != start.config.doc_maxlen
            else index_of(start, in_domain, "start-0")
        )
        mined = mine_negatives(miner, data, depth=mine_depth, index=index)
        mined.save(mined_dir)

    if "train" in phases:
        mined = Negatives.load(mined_dir, data)
        for recipe in recipes:
            run_dir = cache / recipe
            saved = checkpoints(run_dir)
            if saved and json.loads((saved[-1] / "trainer_state.json").read_text()).get("final"):
                continue
            result = train(
                ColBERT.load(start_model, device=device),
                data,
                run_dir,
                mined=mined,
                resume=bool(saved),
                overwrite=not saved and run_dir.exists(),
                steps=steps,
                max_minutes=minutes,
                save_every_minutes=snapshot_minutes,
                keep_checkpoints=0,
                batch_size=batch_size,
                negatives=negatives,
                lr=lr,
                warmup=warmup,
                doc_maxlen=train_doc_maxlen,
                seed=seed,
                **RECIPES[recipe],
            )
            state_file = result.checkpoint / "trainer_state.json"
            state = {
                **json.loads(state_file.read_text()),
                "final": True,
                "load_average_at_end": load_average(),
            }
            state_file.write_text(json.dumps(state, indent=2))
            report()

    if "evaluate" not in phases:
        return report()

    def load(checkpoint):
        # the checkpoint's own settings, except doc_maxlen: scored at the start model's 180
        return ColBERT.load(checkpoint / "stanford", device=device, doc_maxlen=start.config.doc_maxlen)

    def seconds_of(checkpoint):
        return json.loads((checkpoint / "trainer_state.json").read_text())["train_seconds"]

    finals = {}
    for recipe in recipes:
        saved = checkpoints(cache / recipe)
        if saved and json.loads((saved[-1] / "trainer_state.json").read_text()).get("final"):
            finals[recipe] = saved[-1]
    others = [d for d in test_sets if d is not in_domain]
    # most wanted first (each part is cached, so a run stopped early keeps what it measured): quality in
    # domain of the finals and the start, then their [MASK] curves, their term weighting, the other test
    # sets, and last the snapshots (the training-time curve)
    models = [*finals.items(), ("start", None)]
    order = [("quality", tag, path, in_domain) for tag, path in models]
    order += [("curve", tag, path, in_domain) for tag, path in models]
    order += [("weighting", tag, path, in_domain) for tag, path in models]
    order += [("quality", tag, path, d) for d in others for tag, path in models]
    for recipe, path in finals.items():
        order += [("quality", recipe, snap, in_domain) for snap in checkpoints(path.parent)[:-1]]
    for what, tag, path, dataset in order:
        encoder = start if path is None else load(path)
        step = 0 if path is None else int(path.name.split("-")[1])
        if what == "quality":
            quality(encoder, tag, step, 0.0 if path is None else seconds_of(path), dataset)
        else:
            mask_analysis(encoder, tag, step, parts=(what,))
    return report()


def main(argv=None) -> int:
    """``python -m lirlab.bench.train``: the recipe with the issue's defaults (what ``lirlab bench train`` runs)."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m lirlab.bench.train",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    args = p.parse_args(argv)
    return run_from_args(args)


def add_arguments(p) -> None:
    """The options of ``lirlab bench train`` (also ``python -m lirlab.bench.train``)."""
    p.add_argument(
        "--model",
        default=BENCH_MODEL,
        help="start checkpoint (default: %(default)s, built on first use)",
    )
    p.add_argument(
        "--train-dataset",
        default="../shared/data/nfcorpus",
        help="BEIR folder with qrels/train.tsv (default: %(default)s)",
    )
    p.add_argument(
        "--test-datasets",
        nargs="+",
        default=["../shared/data/nfcorpus", "../shared/data/scifact"],
        help="BEIR folders scored on their test split; the one named like the training set gets the "
        "training-time curve and the [MASK] analysis (default: %(default)s)",
    )
    p.add_argument(
        "--minutes", type=float, default=20.0, help="training minutes per run (default: %(default)s)"
    )
    p.add_argument(
        "--snapshot-minutes",
        type=float,
        default=10.0,
        help="checkpoint interval for the curve (default: %(default)s)",
    )
    p.add_argument("--steps", type=int, default=260, help="schedule length in steps (default: %(default)s)")
    p.add_argument(
        "--batch-size", type=int, default=16, help="training queries per step (default: %(default)s)"
    )
    p.add_argument(
        "--negatives",
        type=int,
        default=1,
        help="mined hard negatives per query, besides the in-batch ones (default: %(default)s)",
    )
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default: %(default)s)")
    p.add_argument(
        "--warmup",
        type=float,
        default=0.05,
        help="fraction of --steps with linear warm-up, then linear decay (default: %(default)s)",
    )
    p.add_argument(
        "--train-doc-maxlen",
        type=int,
        default=128,
        help="document tokens while training; evaluation uses the checkpoint's (default: %(default)s)",
    )
    p.add_argument(
        "--mine-depth",
        type=int,
        default=50,
        help="hard negatives kept per training query, from the top of its ranking (default: %(default)s)",
    )
    p.add_argument(
        "--mine-doc-maxlen",
        type=int,
        default=180,
        help="document length of the mining index; shorter mines faster (default: %(default)s)",
    )
    p.add_argument(
        "--phases",
        nargs="+",
        choices=["mine", "train", "evaluate"],
        default=["mine", "train", "evaluate"],
        help="what to run; a phase whose results are cached is skipped (default: all)",
    )
    p.add_argument(
        "--weighting-queries",
        type=int,
        default=100,
        help="queries of the [MASK] term-weighting summary (default: %(default)s)",
    )
    p.add_argument(
        "--recipes",
        nargs="+",
        choices=list(RECIPES),
        default=list(RECIPES),
        help="mask32: queries padded with [MASK] to 32 while training; nomask: not padded (default: both)",
    )
    p.add_argument("--out", default="benchmarks/results", help="results folder (default: %(default)s)")
    p.add_argument(
        "--cache", default="benchmarks/cache", help="checkpoints and encoded corpora (default: %(default)s)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--seed", type=int, default=12345, help="seeds batches and dropout (default: %(default)s)")


def run_from_args(args) -> int:
    from lirlab import data

    model = benchmark_model(args.model)
    path = run_train_benchmark(
        model,
        data.load(args.train_dataset, split="train"),
        [data.load(d, split="test") for d in args.test_datasets],
        args.out,
        cache_dir=args.cache,
        minutes=args.minutes,
        snapshot_minutes=args.snapshot_minutes,
        steps=args.steps,
        batch_size=args.batch_size,
        negatives=args.negatives,
        lr=args.lr,
        warmup=args.warmup,
        train_doc_maxlen=args.train_doc_maxlen,
        mine_depth=args.mine_depth,
        mine_doc_maxlen=args.mine_doc_maxlen,
        phases=tuple(args.phases),
        weighting_queries=args.weighting_queries,
        recipes=tuple(args.recipes),
        device=args.device,
        seed=args.seed,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
