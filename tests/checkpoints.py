"""Build small ColBERT checkpoints in the Stanford and PyLate layouts from the bundled MiniLM weights.

Tests use these to pin how lirlab reads each layout without any download.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def projection(dim: int = 128, hidden: int = 384, seed: int = 7) -> torch.Tensor:
    """A fixed random ``[dim, hidden]`` projection (scaled so outputs stay O(1))."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(dim, hidden, generator=generator) / hidden**0.5


def _copy_base(source: Path, target: Path, architectures: list[str]) -> dict[str, torch.Tensor]:
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, target / name)
    config = json.loads((source / "config.json").read_text())
    config["architectures"] = architectures
    (target / "config.json").write_text(json.dumps(config, indent=2))
    return load_file(str(source / "model.safetensors"))


def write_stanford(source: Path, target: Path, linear: torch.Tensor, **metadata) -> Path:
    """A colbert-ai style folder: ``bert.``-prefixed weights plus ``linear.weight``, ``artifact.metadata``."""
    weights = _copy_base(source, target, ["HF_ColBERT"])
    stored = {f"bert.{k}": v.contiguous() for k, v in weights.items()}
    stored["linear.weight"] = linear.contiguous()
    save_file(stored, str(target / "model.safetensors"))
    meta = {
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "query_maxlen": 32,
        "doc_maxlen": 180,
        "mask_punctuation": True,
        "attend_to_mask_tokens": False,
        "dim": int(linear.shape[0]),
    }
    meta.update(metadata)
    (target / "artifact.metadata").write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))
    return target


def write_pylate(source: Path, target: Path, linear: torch.Tensor, nested: bool = False, **settings) -> Path:
    """A sentence-transformers / PyLate style folder: Transformer (root or ``0_Transformer/``) + ``1_Dense/``."""
    transformer_dir = target / "0_Transformer" if nested else target
    weights = _copy_base(source, transformer_dir, ["BertModel"])
    save_file({k: v.contiguous() for k, v in weights.items()}, str(transformer_dir / "model.safetensors"))
    dense = target / "1_Dense"
    dense.mkdir(parents=True, exist_ok=True)
    save_file({"linear.weight": linear.contiguous()}, str(dense / "model.safetensors"))
    (dense / "config.json").write_text(
        json.dumps(
            {
                "in_features": int(linear.shape[1]),
                "out_features": int(linear.shape[0]),
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
            }
        )
    )
    modules = [
        {
            "idx": 0,
            "name": "0",
            "path": "0_Transformer" if nested else "",
            "type": "sentence_transformers.models.Transformer",
        },
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (target / "modules.json").write_text(json.dumps(modules))
    config = {
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 32,
        "document_length": 180,
        "do_query_expansion": True,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
    }
    config.update(settings)
    (target / "config_sentence_transformers.json").write_text(json.dumps(config))
    return target
