"""The knobs of a training run, in a module that imports no torch: ``lirlab train --help`` and the docs
read them without loading the training loop (:mod:`lirlab.train.loop`)."""

from __future__ import annotations

from lirlab.params import Param

#: Every knob of a training run, declared once (API keywords, CLI flags, README table).
TRAIN_KNOBS: dict[str, Param] = {
    p.name: p
    for p in (
        Param(
            "steps",
            int,
            1000,
            "optimizer steps; the learning rate decays linearly to 0 over them",
            low=1,
            latency="up",
            quality="up",
            aliases="max_steps (PyLate/ST), maxsteps (colbert-ai)",
        ),
        Param(
            "max_minutes",
            float,
            None,
            "wall-clock budget of training steps (evaluation and checkpoint "
            "writing not counted); stops early, the schedule is still set by steps",
            low=0,
            aliases="–",
        ),
        Param(
            "batch_size",
            int,
            16,
            "training queries per step, each with one positive",
            low=1,
            memory="up",
            latency="up",
            aliases="per_device_train_batch_size (PyLate), bsize (colbert-ai)",
        ),
        Param(
            "negatives",
            int,
            1,
            "negatives per query: mined hard negatives (random documents when none were mined)",
            low=0,
            high=64,
            latency="up",
            memory="up",
            aliases="nway - 1 (colbert-ai)",
        ),
        Param(
            "in_batch",
            bool,
            True,
            "also score every query against the other queries' documents "
            "(documents judged relevant to it are left out of its softmax)",
            aliases="use_ib_negatives",
        ),
        Param(
            "lr",
            float,
            3e-5,
            "peak learning rate of AdamW",
            low=0,
            high=1,
            aliases="learning_rate (PyLate/ST), lr (colbert-ai)",
        ),
        Param(
            "warmup",
            float,
            0.1,
            "fraction of steps with linear warm-up from 0",
            low=0,
            high=1,
            aliases="warmup_ratio (ST), warmup (colbert-ai, in steps)",
        ),
        Param("weight_decay", float, 0.0, "AdamW weight decay", low=0, high=1, aliases="weight_decay"),
        Param(
            "max_grad_norm",
            float,
            1.0,
            "gradient clipping norm (0 = no clipping)",
            low=0,
            aliases="max_grad_norm (ST)",
        ),
        Param(
            "scoring",
            str,
            "maxsim",
            "score inside the loss: maxsim (ColBERT) or xtr (each query token retrieves its k_train "
            "best tokens over the whole batch; only retrieved tokens count, Lee et al. 2023)",
            choices=("maxsim", "xtr"),
            aliases="similarity_fct=XTRScores (ST6), XTR loss (PyLate)",
        ),
        Param(
            "k_train",
            int,
            64,
            "with scoring=xtr, document tokens each query token retrieves over the batch (XTR's 320 "
            "for 320-query batches is about 1% of a batch's tokens; 64 is as much of a 16-query batch's)",
            low=1,
            aliases="top_k (ST6 XTRScores), k_train (XTR)",
        ),
        Param(
            "temperature",
            float,
            1.0,
            "scores are divided by it before the softmax",
            low=1e-6,
            aliases="temperature (PyLate Contrastive/Distillation)",
        ),
        Param(
            "accumulation",
            int,
            1,
            "batches whose gradients are summed per optimizer step",
            low=1,
            latency="up",
            aliases="gradient_accumulation_steps (ST), accumsteps (colbert-ai)",
        ),
        Param("seed", int, 12345, "seeds batches, dropout and any new projection", low=0),
        Param(
            "query_maxlen",
            int,
            None,
            "query length in tokens, markers included (default: the "
            "checkpoint's); with query_augmentation, the [MASK] padding target",
            low=4,
            high=512,
            aliases="query_maxlen (colbert-ai), query_length (PyLate)",
        ),
        Param(
            "query_augmentation",
            bool,
            None,
            "pad training queries with [MASK] to query_maxlen (default: the checkpoint's)",
            aliases="do_query_expansion (PyLate)",
        ),
        Param(
            "attend_to_mask_tokens",
            bool,
            None,
            "let attention see the [MASK] padding (default: the checkpoint's)",
            aliases="attend_to_mask_tokens (colbert-ai), attend_to_expansion_tokens (PyLate)",
        ),
        Param(
            "doc_maxlen",
            int,
            None,
            "document length in tokens while training (default: the checkpoint's; saved checkpoints keep it)",
            low=4,
            high=512,
            latency="up",
            aliases="doc_maxlen (colbert-ai), document_length (PyLate)",
        ),
        Param(
            "dim",
            int,
            128,
            "vector size of the projection added to an encoder that has none",
            low=1,
            aliases="dim (colbert-ai), embedding_size (PyLate)",
        ),
        Param(
            "save_every",
            int,
            None,
            "steps between checkpoints (default: only at the end)",
            low=1,
            aliases="save_steps (ST), save_every (colbert-ai)",
        ),
        Param("save_every_minutes", float, None, "training minutes between extra checkpoints", low=0.01),
        Param(
            "keep_checkpoints",
            int,
            2,
            "checkpoints kept in the out folder, newest first (0 = all)",
            low=0,
            aliases="save_total_limit (ST)",
        ),
        Param(
            "eval_every",
            int,
            None,
            "steps between evaluations on the dev set (default: none)",
            low=1,
            aliases="eval_steps (ST)",
        ),
        Param(
            "bf16",
            bool,
            True,
            "bf16 autocast on CUDA (ignored on CPU)",
            aliases="bf16 (ST), amp (colbert-ai)",
        ),
    )
}
