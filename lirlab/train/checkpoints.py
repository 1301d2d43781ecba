"""Write a trained encoder as a checkpoint other tools load as their own, atomically.

* :func:`save_stanford` — the colbert-ai (``HF_ColBERT``) layout: ``config.json`` with
  ``architectures: ["HF_ColBERT"]``, ``model.safetensors`` holding the transformer under ``bert.`` plus the
  bias-free ``linear.weight``, the tokenizer files, and ``artifact.metadata`` with the ColBERT settings;
* :func:`save_pylate` — the PyLate / sentence-transformers layout: the transformer at the folder root,
  ``modules.json`` (Transformer, then ``1_Dense``), ``1_Dense/{config.json, model.safetensors}``,
  ``sentence_bert_config.json`` and ``config_sentence_transformers.json`` (prefixes, lengths, query
  expansion, skiplist);
* :func:`write_atomically` — what both use: the folder is written aside and renamed into place, so a
  crash leaves the previous folder (or none), never a half-written one.

The files follow ``../shared/tools/build_minilm_colbert.py`` (the reference both tools were checked
against). The Stanford layout has no switch for query augmentation: colbert-ai always pads queries with
``[MASK]``, and lirlab reads a Stanford folder that way; the PyLate layout records it
(``do_query_expansion``).

Examples
--------
>>> from lirlab.encoder import ColBERT
>>> encoder = ColBERT.load("benchmarks/models/minilm-colbert")  # doctest: +SKIP
>>> save_stanford(encoder, "out/stanford"); save_pylate(encoder, "out/pylate")  # doctest: +SKIP
>>> ColBERT.load("out/pylate").encode_queries(["bees"]).vectors  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import string
import uuid
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from lirlab.encoder import ColBERT


@contextlib.contextmanager
def write_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder next to ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.writing-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = path.parent / f".{path.name}.retired-{uuid.uuid4().hex[:8]}"
    if path.exists():
        os.replace(path, retired)
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)


def _single_projection(encoder: ColBERT) -> torch.Tensor:
    if len(encoder.projections) != 1 or encoder.projections[0].bias is not None:
        raise ValueError(
            "the Stanford layout holds one bias-free linear projection; this encoder has "
            f"{len(encoder.projections)} projection(s){' with a bias' if encoder.projections else ''}: "
            "save it in the PyLate layout instead"
        )
    return encoder.projections[0].weight.detach().float().cpu().contiguous()


def _transformer_state(encoder: ColBERT) -> dict[str, torch.Tensor]:
    state = encoder.model.state_dict()
    return {
        k: v.detach().float().cpu().contiguous() for k, v in state.items() if not k.endswith("position_ids")
    }


def _model_config(encoder: ColBERT, architectures: list[str]) -> dict:
    config = encoder.model.config.to_dict()
    config["architectures"] = architectures
    config["vocab_size"] = int(encoder.model.get_input_embeddings().weight.shape[0])
    config.pop("torch_dtype", None)
    config["dtype"] = "float32"
    return config


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def _mask_punctuation(encoder: ColBERT) -> bool:
    return set(encoder.config.skiplist) == set(string.punctuation)


def save_stanford(encoder: ColBERT, folder: str | os.PathLike) -> Path:
    """Write ``encoder`` in the colbert-ai layout (see the module notes); returns the folder."""
    if encoder.config.query_marker is None or encoder.config.doc_marker is None:
        raise ValueError(
            "the Stanford layout needs query and document markers; use lirlab.train.prepare_encoder"
        )
    if encoder.config.skiplist and not _mask_punctuation(encoder):
        raise ValueError("the Stanford layout only records the punctuation skiplist (mask_punctuation)")
    linear = _single_projection(encoder)
    with write_atomically(folder) as out:
        weights = {f"bert.{k}": v for k, v in _transformer_state(encoder).items()}
        weights["linear.weight"] = linear
        save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
        _write_json(out / "config.json", _model_config(encoder, ["HF_ColBERT"]))
        encoder.tokenizer.save_pretrained(str(out))
        c = encoder.config
        _write_json(
            out / "artifact.metadata",
            {
                "query_token_id": c.query_marker,
                "doc_token_id": c.doc_marker,
                "query_token": "[Q]",
                "doc_token": "[D]",
                "dim": int(linear.shape[0]),
                "query_maxlen": int(c.query_maxlen),
                "doc_maxlen": int(c.doc_maxlen),
                "mask_punctuation": _mask_punctuation(encoder),
                "attend_to_mask_tokens": bool(c.attend_to_mask_tokens),
                "interaction": "colbert",
                "similarity": "cosine",
                "meta": {"version": "colbert-v0.4", "written_by": "lirlab.train"},
            },
        )
    return Path(folder)


def save_pylate(encoder: ColBERT, folder: str | os.PathLike) -> Path:
    """Write ``encoder`` in the PyLate / sentence-transformers layout (see the module notes); returns the folder."""
    if not encoder.projections:
        raise ValueError("the PyLate layout needs a projection; use lirlab.train.prepare_encoder")
    c = encoder.config
    with write_atomically(folder) as out:
        save_file(_transformer_state(encoder), str(out / "model.safetensors"), metadata={"format": "pt"})
        _write_json(out / "config.json", _model_config(encoder, [type(encoder.model).__name__]))
        encoder.tokenizer.save_pretrained(str(out))
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
        for i, layer in enumerate(encoder.projections, start=1):
            dense = out / f"{i}_Dense"
            dense.mkdir()
            tensors = {"linear.weight": layer.weight.detach().float().cpu().contiguous()}
            if layer.bias is not None:
                tensors["linear.bias"] = layer.bias.detach().float().cpu().contiguous()
            save_file(tensors, str(dense / "model.safetensors"))
            _write_json(
                dense / "config.json",
                {
                    "in_features": int(layer.in_features),
                    "out_features": int(layer.out_features),
                    "bias": layer.bias is not None,
                    "activation_function": "torch.nn.modules.linear.Identity",
                    "use_residual": False,
                },
            )
            modules.append(
                {"idx": i, "name": str(i), "path": f"{i}_Dense", "type": "pylate.models.Dense.Dense"}
            )
        _write_json(out / "modules.json", modules)
        _write_json(
            out / "sentence_bert_config.json",
            {"max_seq_length": int(c.doc_maxlen) - 1, "do_lower_case": False},
        )
        _write_json(
            out / "config_sentence_transformers.json",
            {
                "__version__": {"sentence_transformers": "5.3.0", "pytorch": torch.__version__},
                "prompts": {},
                "default_prompt_name": None,
                "similarity_fn_name": "MaxSim",
                "query_prefix": c.query_marker,
                "document_prefix": c.doc_marker,
                "query_length": int(c.query_maxlen),
                "document_length": int(c.doc_maxlen),
                "attend_to_expansion_tokens": bool(c.attend_to_mask_tokens),
                "do_query_expansion": bool(c.query_augmentation),
                "skiplist_words": list(c.skiplist),
                "model_type": "ColBERT",
            },
        )
    return Path(folder)
