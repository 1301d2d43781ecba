"""The training loop: batches of queries with their positive and negatives, MaxSim, a loss, AdamW.

:func:`train` runs on CPU or CUDA (bf16 autocast there), with linear warm-up then linear decay, gradient
accumulation, a wall-clock budget, periodic evaluation on a dev set (ir_measures), checkpoints every N
steps or minutes, and resume. Every step draws its batch from a generator seeded by ``(seed, step)`` and
seeds torch (dropout) the same way, so a resumed run repeats exactly the losses the uninterrupted run
would have had.

A run's out folder holds ``lirlab-train.json`` (settings, data, start model), ``log.jsonl`` (one line per
step: loss, learning rate, training seconds; and evaluations), ``negatives/`` (the mined set, when given)
and ``checkpoint-<step>/`` folders written by :func:`lirlab.train.checkpoints.save_checkpoint`: the model
in every layout (``stanford/``, ``pylate/``, ``sentence_transformers/``), the optimizer state,
``trainer_state.json`` and lirlab's ``metadata.json`` with a checksum of every file. Checkpoints are
written durably and swapped in atomically: a run killed at any moment leaves its last checkpoint intact,
and what the killed writer left is removed when the run resumes.

Only good weights are saved: the gradient is checked before every optimizer step and a non-finite one
stops the run before the update, so the checkpoint named "last good" never holds NaN weights. Resuming
verifies the newest checkpoint (every file hashed); a damaged one is moved aside to
``checkpoint-<step>.damaged-<time>`` with a warning and the run resumes from the newest that verifies.

Examples
--------
>>> from lirlab import ColBERT, data
>>> from lirlab.train import TrainingData, train
>>> pairs = TrainingData.from_dataset(data.load("demo"))
>>> result = train(ColBERT.load("minilm"), pairs, "runs/demo", steps=20, batch_size=4)  # doctest: +SKIP
>>> result.log[["step", "loss"]].tail(3)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from lirlab import notices
from lirlab.data import Dataset
from lirlab.params import validate
from lirlab.storage import ArtifactError
from lirlab.train.checkpoints import (
    CHECKPOINT_NAME,
    clean_checkpoint_leftovers,
    load_optimizer_state,
    nonfinite_parameters,
    remove_written,
    save_checkpoint,
    verify_checkpoint,
)
from lirlab.train.examples import TrainingData
from lirlab.train.knobs import TRAIN_KNOBS
from lirlab.train.losses import contrastive_loss, distillation_loss, maxsim_scores, xtr_scores
from lirlab.train.model import TrainableColBERT, prepare_encoder
from lirlab.train.negatives import Negatives

RUN_FILE = "lirlab-train.json"
LOG_FILE = "log.jsonl"

ENCODER_KNOBS = ("query_maxlen", "query_augmentation", "attend_to_mask_tokens", "doc_maxlen")


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss or gradient); the message names the last good checkpoint."""


class DamagedCheckpointWarning(UserWarning):
    """Resuming found a damaged checkpoint: it was moved aside and the run resumes from an older one."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained encoder (eval mode), where it was saved, and the log."""

    encoder: Any
    out: Path
    checkpoint: Path | None
    steps: int
    seconds: float
    log: pd.DataFrame


def lr_at(step: int, steps: int, peak: float, warmup: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then linear decay to 0.

    >>> [round(lr_at(s, 10, 1.0, 0.2), 3) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.125]
    """
    warm = max(int(round(steps * warmup)), 0)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * max(steps - step, 0) / max(steps - warm, 1)


def checkpoints(out: str | Path) -> list[Path]:
    """The ``checkpoint-<step>`` folders of a run, oldest first."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [
        p
        for p in out.iterdir()
        if p.is_dir() and CHECKPOINT_NAME.match(p.name) and (p / "trainer_state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(CHECKPOINT_NAME.match(p.name).group(1)))


def _check_out(out: Path, overwrite: bool, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None; refuses folders it must not touch."""
    if overwrite and resume:
        raise ValueError("choose one of overwrite (start over) and resume (continue), not both")
    if not out.exists():
        if resume:
            raise ValueError(f"{out}: nothing to resume (no such folder); drop resume to start a new run")
        return None
    if not out.is_dir():
        raise ValueError(f"{out} is a file; the out folder of a run must be a folder")
    ours = (out / RUN_FILE).is_file()
    if ours:
        clean_checkpoint_leftovers(out)  # first: it completes a checkpoint whose swap was interrupted
    saved = checkpoints(out)
    if resume:
        if not saved:
            raise ValueError(f"{out} holds no checkpoint to resume from; drop resume to start a new run")
        return _newest_good_checkpoint(out, saved)
    if not ours and any(out.iterdir()):
        raise ValueError(f"{out} exists and was not written by lirlab train; choose another out folder")
    if ours and (saved or (out / LOG_FILE).is_file()):
        if not overwrite:
            last = saved[-1].name if saved else LOG_FILE
            raise ValueError(
                f"{out} already holds a training run ({last}); pass overwrite=True (--overwrite) to start over "
                "or resume=True (--resume) to continue it"
            )
        for path in saved:
            remove_written(path)
        for name in (LOG_FILE, RUN_FILE):
            (out / name).unlink(missing_ok=True)
        if (out / "negatives").is_dir():
            remove_written(out / "negatives")
    return None


def _newest_good_checkpoint(out: Path, saved: list[Path]) -> Path:
    """The newest checkpoint that verifies; damaged newer ones are moved aside (not deleted) with a warning."""
    damaged: list[tuple[Path, ArtifactError]] = []
    for candidate in reversed(saved):
        try:
            verify_checkpoint(candidate)
        except ArtifactError as error:
            damaged.append((candidate, error))
            continue
        for folder, error in damaged:
            aside = folder.with_name(f"{folder.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            folder.rename(aside)
            warnings.warn(
                f"{error}; the checkpoint was moved to {aside.name}, resuming from {candidate}",
                DamagedCheckpointWarning,
                stacklevel=4,
            )
        return candidate
    newest, error = damaged[0]
    raise ValueError(
        f"no checkpoint in {out} verifies ({newest.name}: {error}); "
        "start over with overwrite=True (--overwrite)"
    )


class _Sampler:
    """Batches drawn from a generator seeded by ``(seed, step, micro-batch)``: repeatable from any step."""

    def __init__(self, data: TrainingData, negatives: Negatives | None, n_negatives: int, seed: int):
        self.data = data
        self.qids = sorted(data.queries)
        self.docnos = sorted(data.docs)
        self.negatives = negatives
        self.n = n_negatives
        self.seed = seed

    def _random_docs(self, rng: random.Random, avoid: set[str], count: int) -> list[str]:
        picked: list[str] = []
        if len(self.docnos) - len(avoid) < count:
            raise ValueError(
                f"the corpus has too few documents outside a query's positives to draw {count} negatives"
            )
        while len(picked) < count:
            docno = self.docnos[rng.randrange(len(self.docnos))]
            if docno not in avoid:
                picked.append(docno)
                avoid.add(docno)
        return picked

    def batch(self, step: int, micro: int, size: int) -> tuple[list[str], list[str], list[list[str]]]:
        rng = random.Random(f"{self.seed}:{step}:{micro}")
        qids = rng.sample(self.qids, size)
        positives, negatives = [], []
        for qid in qids:
            judged = set(self.data.positives[qid])
            positives.append(rng.choice(self.data.positives[qid]))
            if self.data.teacher:
                pool = [d for d in self.data.teacher[qid] if d not in judged]
                negatives.append([rng.choice(pool) for _ in range(self.n)] if pool else [])
                continue
            pool = [d for d in (self.negatives.for_query(qid) if self.negatives else ()) if d not in judged]
            chosen = rng.sample(pool, min(self.n, len(pool)))
            if len(chosen) < self.n:
                chosen += self._random_docs(rng, judged | set(chosen), self.n - len(chosen))
            negatives.append(chosen)
        return qids, positives, negatives


def _diverged(what: str, last_checkpoint: Path | None) -> TrainingError:
    kept = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint was saved yet"
    return TrainingError(f"{what}; training stopped ({kept}). Lower the learning rate (lr) or check the data")


def _save_checkpoint(
    out: Path, encoder, optimizer, step: int, seconds: float, keep: int, extra: dict, last: Path | None
) -> Path:
    bad = nonfinite_parameters(encoder)
    if bad:
        raise _diverged(
            f"the weights are not finite after step {step} ({bad[0]}), so they were not saved", last
        )
    path = save_checkpoint(
        out / f"checkpoint-{step:06d}",
        encoder,
        optimizer,
        {"step": step, "train_seconds": seconds, **extra},
    )
    if keep:
        for old in checkpoints(out)[:-keep]:
            remove_written(old)
    clean_checkpoint_leftovers(out)
    return path


def _read_log(out: Path, up_to: int) -> list[dict]:
    file = out / LOG_FILE
    if not file.is_file():
        return []
    rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("step", 0) <= up_to]


def evaluate_encoder(
    encoder, dataset: Dataset, measures=("nDCG@10", "R@100"), k: int = 100, progress: bool = False
) -> dict:
    """Exhaustive MaxSim quality of ``encoder`` on ``dataset`` (its own query settings): ``{measure: value}``."""
    from lirlab.evaluate import evaluate
    from lirlab.index.flat import FlatIndex

    index = FlatIndex.build(dataset.docs, encoder, progress=progress)
    run = index.search(dataset.queries, k=min(k, len(dataset.docs)))
    return evaluate(run, dataset, list(measures)).set_index("measure")["value"].to_dict()


def train(
    encoder,
    data: TrainingData,
    out: str | Path,
    mined: Negatives | None = None,
    eval_dataset: Dataset | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    **knobs,
) -> TrainResult:
    """Train ``encoder`` on ``data``; checkpoints and the log go to ``out``.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
        The starting checkpoint (its device is the training device). A plain encoder gets markers and a
        projection (see :func:`lirlab.train.model.prepare_encoder`). Its weights are trained in place.
    data : TrainingData
        Queries, corpus and positive pairs; with teacher scores (:meth:`TrainingData.with_teacher`) the
        loss is KL distillation over each query's positive and ``negatives`` teacher-scored documents,
        otherwise contrastive over MaxSim with hard (``negatives``) and in-batch negatives.
    out : str or Path
        The run's folder (see the module notes). A folder already holding a run is refused unless
        ``overwrite`` (start over) or ``resume`` (continue from its last checkpoint, with its saved settings).
    mined : Negatives, optional
        Mined hard negatives (:func:`lirlab.train.mine_negatives`); saved into ``out/negatives``.
        Without them, negatives are random documents.
    eval_dataset : Dataset, optional
        Dev set evaluated every ``eval_every`` steps (nDCG@10 and R@100, exhaustive MaxSim).
    **knobs
        :data:`TRAIN_KNOBS` (``steps``, ``batch_size``, ``lr``, ...).

    Raises
    ------
    ValueError
        Bad settings, a batch larger than the training set, an out folder that holds a run.
    TrainingError
        The loss or the gradient became NaN or infinite (checked before each update, so the weights of
        every checkpoint stay finite); the last good checkpoint is kept and named.

    Warns
    -----
    DamagedCheckpointWarning
        Resuming found the newest checkpoint damaged: it is moved aside and an older one is used.
    """
    out = Path(out)
    resume_from = _check_out(out, overwrite, resume)
    if resume_from is not None:
        saved = json.loads((out / RUN_FILE).read_text())
        given = {k: v for k, v in knobs.items() if k in ("max_minutes",)}
        knobs = {**saved["knobs"], **given}
    knobs = validate(TRAIN_KNOBS, knobs)
    if knobs["batch_size"] > len(data.queries):
        raise ValueError(
            f"batch_size {knobs['batch_size']} is larger than the training set ({len(data.queries)} queries): "
            "lower the batch size"
        )
    if knobs["eval_every"] and eval_dataset is None:
        raise ValueError("eval_every needs an eval_dataset (--eval-dataset)")
    if data.teacher and knobs["negatives"] < 1:
        raise ValueError("distillation needs negatives >= 1 (teacher-scored documents beside the positive)")
    device = encoder.device
    if resume_from is not None:
        from lirlab.encoder import ColBERT

        encoder = ColBERT.load(resume_from / "stanford", device=device)  # verified by _check_out
    encoder = prepare_encoder(
        encoder, **{k: knobs[k] for k in ENCODER_KNOBS}, dim=knobs["dim"], seed=knobs["seed"]
    )
    for k in ENCODER_KNOBS:  # record the resolved settings, so a resume rebuilds exactly this encoder
        knobs[k] = getattr(encoder.config, k)
    net = TrainableColBERT(encoder)
    optimizer = torch.optim.AdamW(net.parameters(), lr=knobs["lr"], weight_decay=knobs["weight_decay"])
    start_step, seconds = 0, 0.0
    out.mkdir(parents=True, exist_ok=True)
    if resume_from is not None:
        load_optimizer_state(optimizer, resume_from)
        state = json.loads((resume_from / "trainer_state.json").read_text())
        start_step, seconds = int(state["step"]), float(state["train_seconds"])
        log = _read_log(out, start_step)
    else:
        log = []
        if mined is not None:
            mined.save(out / "negatives")
        run_info = {
            "type": "lirlab.train",
            "format_version": 1,
            "knobs": knobs,
            "start_model": encoder.describe(),
            "data": repr(data),
            "loss": "distillation" if data.teacher else "contrastive",
            "negatives": mined.meta if mined is not None else "random",
        }
        (out / RUN_FILE).write_text(json.dumps(run_info, indent=2, default=str))
    (out / LOG_FILE).write_text("".join(json.dumps(r) + "\n" for r in log))

    if resume_from is not None and mined is None and (out / "negatives" / "negatives.tsv").is_file():
        mined = Negatives.load(out / "negatives", data)
    sampler = _Sampler(data, mined, knobs["negatives"], knobs["seed"])
    autocast = device.type == "cuda" and knobs["bf16"]
    budget = knobs["max_minutes"] * 60 if knobs["max_minutes"] is not None else math.inf
    every_s = knobs["save_every_minutes"] * 60 if knobs["save_every_minutes"] else None
    next_snapshot = (math.floor(seconds / every_s) + 1) * every_s if every_s else math.inf
    last_checkpoint = resume_from
    extra = {"data": repr(data)}
    steps = knobs["steps"]
    bar = tqdm(total=steps, initial=start_step, desc="train", unit="step", disable=not progress)
    step = start_step
    net.train()
    with open(out / LOG_FILE, "a", encoding="utf-8") as log_file:
        while step < steps and seconds < budget:
            began = time.perf_counter()
            lr = lr_at(step, steps, knobs["lr"], knobs["warmup"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(knobs["seed"] * 1_000_003 + step)
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for micro in range(knobs["accumulation"]):
                qids, pos, negs = sampler.batch(step, micro, knobs["batch_size"])
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = _loss(net, data, qids, pos, negs, knobs)
                value = float(loss.detach())
                if not math.isfinite(value):
                    bar.close()
                    raise _diverged(f"the loss became {value} at step {step + 1}", last_checkpoint)
                (loss / knobs["accumulation"]).backward()
                total += value / knobs["accumulation"]
            if knobs["max_grad_norm"]:
                norm = torch.nn.utils.clip_grad_norm_(net.parameters(), knobs["max_grad_norm"])
            else:
                norm = torch.nn.utils.get_total_norm([p.grad for p in net.parameters() if p.grad is not None])
            if not bool(torch.isfinite(norm)):  # checked before the update: the weights stay good
                bar.close()
                raise _diverged(
                    f"the gradient became {float(norm)} at step {step + 1} (loss {total:.4g}), before the "
                    "update",
                    last_checkpoint,
                )
            optimizer.step()
            step += 1
            seconds += time.perf_counter() - began
            row = {"step": step, "loss": total, "lr": lr, "train_seconds": seconds}
            log.append(row)
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
            bar.set_postfix(loss=f"{total:.4f}", lr=f"{lr:.2e}", refresh=False)
            bar.update(1)
            if knobs["eval_every"] and step % knobs["eval_every"] == 0:
                net.eval()
                quality = evaluate_encoder(encoder, eval_dataset)
                net.train()
                row = {"step": step, "train_seconds": seconds, "eval": eval_dataset.name, **quality}
                log.append(row)
                log_file.write(json.dumps(row) + "\n")
                log_file.flush()
            snapshot = seconds >= next_snapshot
            while seconds >= next_snapshot:
                next_snapshot += every_s
            if (knobs["save_every"] and step % knobs["save_every"] == 0) or snapshot:
                net.eval()
                last_checkpoint = _save_checkpoint(
                    out, encoder, optimizer, step, seconds, knobs["keep_checkpoints"], extra, last_checkpoint
                )
                net.train()
    bar.close()
    net.eval()
    if last_checkpoint is None or not last_checkpoint.name.endswith(f"{step:06d}"):
        last_checkpoint = _save_checkpoint(
            out, encoder, optimizer, step, seconds, knobs["keep_checkpoints"], extra, last_checkpoint
        )
    if progress:
        notices.inform(
            f"trained {step - start_step} steps in {seconds / 60:.1f} min; checkpoint: {last_checkpoint}"
        )
    return TrainResult(encoder, out, last_checkpoint, step, seconds, pd.DataFrame(log))


def _loss(
    net: TrainableColBERT, data: TrainingData, qids, positives, negatives, knobs: Mapping
) -> torch.Tensor:
    q_vectors, q_mask = net.queries([data.queries[q] for q in qids])
    n = knobs["negatives"]
    docnos = list(positives) + [d for row in negatives for d in row]
    d_vectors, d_mask = net.documents([data.docs[d] for d in docnos])
    b = len(qids)
    own = torch.tensor([[i] + [b + i * n + j for j in range(n)] for i in range(b)], device=q_vectors.device)
    if knobs["scoring"] == "xtr":
        score = partial(xtr_scores, k_train=knobs["k_train"])
    else:
        score = maxsim_scores
    if data.teacher:
        student = score(q_vectors, q_mask, d_vectors, d_mask).gather(1, own)
        teacher = torch.tensor(
            [[data.teacher[q][d] for d in [p, *row]] for q, p, row in zip(qids, positives, negatives)],
            device=student.device,
        )
        return distillation_loss(student, teacher, knobs["temperature"])
    targets = torch.arange(b, device=q_vectors.device)
    if knobs["in_batch"]:
        scores = score(q_vectors, q_mask, d_vectors, d_mask)
        exclude = torch.tensor(
            [[d in set(data.positives[q]) for d in docnos] for q in qids], device=scores.device
        )
        return contrastive_loss(scores, targets, knobs["temperature"], exclude)
    scores = torch.stack(
        [
            score(q_vectors[i : i + 1], q_mask[i : i + 1], d_vectors[own[i]], d_mask[own[i]])[0]
            for i in range(b)
        ]
    )
    return contrastive_loss(
        scores, torch.zeros(b, dtype=torch.long, device=scores.device), knobs["temperature"]
    )
