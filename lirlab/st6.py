"""Write an encoder in the layout Sentence Transformers 6 saves a ``MultiVectorEncoder`` in.

:func:`write_sentence_transformers` writes what ``MultiVectorEncoder.save_pretrained`` writes for a text
ColBERT, so that ``MultiVectorEncoder(folder)`` gives lirlab's vectors (and :meth:`lirlab.encoder.ColBERT.load`
reads it back as it was):

* the transformer at the folder root (``model.safetensors``, ``config.json``, the tokenizer files) and its
  ``sentence_bert_config.json``: ``query_length``, ``document_length`` and ``query_expansion``
  (``"fixed"`` for the classic padding to ``query_maxlen``, ``"min"`` when ``query_minlen`` is set, none
  without query augmentation);
* one ``{i}_Dense`` folder per projection (``config.json``, ``model.safetensors``), then a
  ``MultiVectorMask`` (the skiplist, as the vocabulary tokens lirlab drops) and a ``Normalize`` module;
* ``modules.json`` listing them, and ``config_sentence_transformers.json`` with the markers as the
  ``query`` and ``document`` prompts. Sentence Transformers puts a prompt's text before each text, so a
  marker the tokenizer would split (``[unused0]`` in BERT's vocabulary) is registered as a special token
  of the saved tokenizer, as Sentence Transformers does when it converts a ColBERT checkpoint.

Examples
--------
>>> from lirlab.encoder import ColBERT
>>> encoder = ColBERT.load("benchmarks/models/minilm-colbert")  # doctest: +SKIP
>>> out = Path("out/st6"); out.mkdir(parents=True)  # doctest: +SKIP
>>> write_sentence_transformers(encoder, out)  # doctest: +SKIP
>>> from sentence_transformers import MultiVectorEncoder  # doctest: +SKIP
>>> MultiVectorEncoder(str(out)).encode_query(["bees"])  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from lirlab.encoder import ColBERT

#: The module classes of the layout, as ``modules.json`` names them.
TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
DENSE = "sentence_transformers.base.modules.dense.Dense"
MULTI_VECTOR_MASK = "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask"
NORMALIZE = "sentence_transformers.base.modules.normalize.Normalize"

#: The Sentence Transformers release whose layout this writes.
LAYOUT_VERSION = "6.3.0"

_TOKEN_IO = {"module_input_name": "token_embeddings", "module_output_name": "token_embeddings"}


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def write_dense_module(layer: torch.nn.Linear, folder: Path, **config: Any) -> Path:
    """Write one projection as a Sentence Transformers ``Dense`` module folder (the layout PyLate and
    Sentence Transformers 6 share); ``config`` adds the layout's own fields to its ``config.json``."""
    folder.mkdir()
    tensors = {"linear.weight": layer.weight.detach().float().cpu().contiguous()}
    if layer.bias is not None:
        tensors["linear.bias"] = layer.bias.detach().float().cpu().contiguous()
    save_file(tensors, str(folder / "model.safetensors"))
    _write_json(
        folder / "config.json",
        {
            "in_features": int(layer.in_features),
            "out_features": int(layer.out_features),
            "bias": layer.bias is not None,
            "activation_function": "torch.nn.modules.linear.Identity",
            **config,
        },
    )
    return folder


def query_expansion(encoder: ColBERT) -> tuple[dict[str, Any] | None, int]:
    """The ``query_expansion`` setting and ``query_length`` that make Sentence Transformers pad as ``encoder``."""
    c = encoder.config
    if not c.query_augmentation:
        return None, int(c.query_maxlen)
    strategy = "min" if c.query_minlen is not None and c.query_minlen < c.query_maxlen else "fixed"
    expansion = {
        "strategy": strategy,
        "attend": bool(c.attend_to_mask_tokens),
        "token": None,
        "length": int(encoder.query_padding_target),
    }
    return expansion, int(c.query_maxlen)


def _tokenizer_with_markers(encoder: ColBERT):
    """A copy of the tokenizer in which each marker is one special token when its text is put before a text."""
    markers = [m for m in (encoder.config.query_marker, encoder.config.doc_marker) if m]
    split = [m for m in markers if encoder.tokenizer.tokenize(m) != [m]]
    if not split:
        return encoder.tokenizer
    from transformers import AddedToken

    tokenizer = copy.deepcopy(encoder.tokenizer)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(m, normalized=False, special=True) for m in split]}
    )
    return tokenizer


def write_sentence_transformers(encoder: ColBERT, out: Path) -> None:
    """Write ``encoder`` in the Sentence Transformers 6 ``MultiVectorEncoder`` layout into the existing, empty ``out``.

    Raises
    ------
    ValueError
        The encoder has no projection (train a prepared encoder: :func:`lirlab.train.prepare_encoder`).
    """
    if not encoder.projections:
        raise ValueError(
            "the Sentence Transformers layout needs a projection; use lirlab.train.prepare_encoder"
        )
    out = Path(out)
    c = encoder.config
    state = {
        k: v.detach().float().cpu().contiguous()
        for k, v in encoder.model.state_dict().items()
        if not k.endswith("position_ids")
    }
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    model_config = encoder.model.config.to_dict()
    model_config.update(
        architectures=[type(encoder.model).__name__],
        vocab_size=int(encoder.model.get_input_embeddings().weight.shape[0]),
        dtype="float32",
    )
    model_config.pop("torch_dtype", None)
    _write_json(out / "config.json", model_config)
    _tokenizer_with_markers(encoder).save_pretrained(str(out))
    expansion, query_length = query_expansion(encoder)
    _write_json(
        out / "sentence_bert_config.json",
        {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
            "query_length": query_length,
            "document_length": int(c.doc_maxlen),
            "query_expansion": expansion,
        },
    )
    modules = [{"idx": 0, "name": "0", "path": "", "type": TRANSFORMER}]
    for layer in encoder.projections:
        i = len(modules)
        dense = write_dense_module(layer, out / f"{i}_Dense", **_TOKEN_IO)
        modules.append({"idx": i, "name": str(i), "path": dense.name, "type": DENSE})
    # The tokens lirlab drops, so that Sentence Transformers (which skips words that are not one token of
    # the vocabulary) drops the very same ones.
    skiplist = [encoder.vocab[i] for i in encoder.skip_ids.tolist()]
    for kind, config in (
        (
            MULTI_VECTOR_MASK,
            {"skiplist_words": skiplist, "skiplist_tasks": ["document"], "keep_only_token_ids": None},
        ),
        (NORMALIZE, dict(_TOKEN_IO)),
    ):
        i = len(modules)
        folder = out / f"{i}_{kind.rsplit('.', 1)[-1]}"
        folder.mkdir()
        _write_json(folder / "config.json", config)
        modules.append({"idx": i, "name": str(i), "path": folder.name, "type": kind})
    _write_json(out / "modules.json", modules)
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "__version__": {"sentence_transformers": LAYOUT_VERSION, "pytorch": torch.__version__},
            "model_type": "MultiVectorEncoder",
            "prompts": {
                "query": f"{c.query_marker} " if c.query_marker else "",
                "document": f"{c.doc_marker} " if c.doc_marker else "",
            },
            "default_prompt_name": None,
            "similarity_fn_name": "maxsim",
        },
    )
