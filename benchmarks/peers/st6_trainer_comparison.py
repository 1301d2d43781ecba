"""Train the MiniLM-ColBERT checkpoint with Sentence Transformers 6's ``MultiVectorEncoderTrainer`` on the
batches lirlab's trainer draws, for the same steps or minutes, and save the model for lirlab to score.

Not part of lirlab: the trainer needs Hugging Face ``datasets``, which lirlab does not depend on. Run it
in a venv that sees lirlab's packages::

    python -m venv --system-site-packages /tmp/st6venv && /tmp/st6venv/bin/pip install datasets
    python -m lirlab.bench.train --lr 1e-4 --mine-doc-maxlen 64 --steps 400 --phases mine
    PYTHONPATH=. /tmp/st6venv/bin/python benchmarks/peers/st6_trainer_comparison.py \
        --steps 400 --minutes 20 --out benchmarks/cache/train/st6-mask32

The batches are lirlab's own (its sampler, seeded by step: the same queries, positives and mined hard
negatives, in the same order), so the two trainers differ only in what they do with a batch. Settings
follow lirlab's ``mask32`` recipe: batch 16, one mined hard negative plus the in-batch ones, lr 1e-4
with 5% warm-up and linear decay, gradient norm clipped at 1, queries padded with ``[MASK]`` to 32 (not
attended to), documents cut at 128 tokens, temperature 1 (``scale=1``). One difference stays: lirlab
leaves documents judged relevant to a query out of its softmax; Sentence Transformers' loss does not.
The model is saved by ``save_pretrained`` into ``OUT/final`` with ``OUT/st6-train.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from datasets import Dataset as HFDataset
from sentence_transformers import (
    MultiVectorEncoder,
    MultiVectorEncoderTrainer,
    MultiVectorEncoderTrainingArguments,
)
from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss
from torch.utils.data import BatchSampler, SequentialSampler
from transformers import TrainerCallback

from lirlab.bench.record import load_average
from lirlab.data import load
from lirlab.train import Negatives, TrainingData
from lirlab.train.loop import _Sampler


class _InOrder(MultiVectorEncoderTrainer):
    """The rows in the order written: lirlab's batches, one after another."""

    def get_batch_sampler(self, dataset, batch_size, drop_last, *args, **kwargs):
        return BatchSampler(SequentialSampler(dataset), batch_size=batch_size, drop_last=drop_last)


class _StopAfter(TrainerCallback):
    """Stop once ``minutes`` of training steps have run, as lirlab's ``max_minutes`` does."""

    def __init__(self, minutes: float):
        self.limit = minutes * 60
        self.began = None
        self.steps = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.began = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        elapsed = time.perf_counter() - self.began
        self.steps.append({"step": state.global_step, "train_seconds": elapsed})
        if elapsed >= self.limit:
            control.should_training_stop = True


def lirlab_batches(data: TrainingData, mined: Negatives, steps: int, batch_size: int, seed: int) -> dict:
    sampler = _Sampler(data, mined, 1, seed)
    rows = {"query": [], "positive": [], "negative": []}
    for step in range(steps):
        qids, positives, negatives = sampler.batch(step, 0, batch_size)
        for qid, positive, (negative,) in zip(qids, positives, negatives):
            rows["query"].append(data.queries[qid])
            rows["positive"].append(data.docs[positive])
            rows["negative"].append(data.docs[negative])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="benchmarks/models/minilm-colbert")
    parser.add_argument("--dataset", default="../shared/data/nfcorpus")
    parser.add_argument("--negatives", default="benchmarks/cache/train/negatives")
    parser.add_argument("--out", default="benchmarks/cache/train/st6-mask32")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=float, default=0.05)
    parser.add_argument("--doc-maxlen", type=int, default=128)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()

    data = TrainingData.from_dataset(load(args.dataset, split="train"))
    mined = Negatives.load(args.negatives, data)
    rows = lirlab_batches(data, mined, args.steps, args.batch_size, args.seed)

    model = MultiVectorEncoder(args.model, device="cpu")
    out = Path(args.out)
    stop = _StopAfter(args.minutes)
    trainer = _InOrder(
        model=model,
        args=MultiVectorEncoderTrainingArguments(
            output_dir=str(out / "trainer"),
            per_device_train_batch_size=args.batch_size,
            max_length={"query": 32, "document": args.doc_maxlen},
            max_steps=args.steps,
            learning_rate=args.lr,
            warmup_steps=args.warmup,
            lr_scheduler_type="linear",
            weight_decay=0.0,
            max_grad_norm=1.0,
            seed=args.seed,
            logging_steps=10,
            save_strategy="no",
            report_to=[],
            dataloader_drop_last=True,
            use_cpu=True,
        ),
        train_dataset=HFDataset.from_dict(rows),
        loss=MultiVectorMultipleNegativesRankingLoss(model, scale=1.0),
        callbacks=[stop],
    )
    began = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - began
    model.save_pretrained(str(out / "final"))
    losses = [{"step": r["step"], "loss": r["loss"]} for r in trainer.state.log_history if "loss" in r]
    (out / "st6-train.json").write_text(
        json.dumps(
            {
                "steps_done": trainer.state.global_step,
                "wall_seconds": seconds,
                "train_seconds_at_last_step": stop.steps[-1]["train_seconds"] if stop.steps else None,
                "torch_threads": torch.get_num_threads(),
                "load_average_at_end": load_average(),
                "settings": {k: v for k, v in vars(args).items()},
                "query_expansion": getattr(model[0], "query_expansion", None),
                "loss_log": losses,
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            },
            indent=2,
            default=str,
        )
    )
    print(f"trained {trainer.state.global_step} steps in {seconds:.0f} s; saved {out / 'final'}")


if __name__ == "__main__":
    main()
