"""BERT's forward pass written out in torch ops, for encoding one query at a time with little overhead.

At batch 1 a ColBERT query is 32 tokens, and the transformers forward spends a good part of its time
outside the matrix multiplies (the 4-D attention mask, module and decorator machinery, keyword plumbing),
while the multiplies themselves are small enough that MKL's repacking of the weight on every call is
a large share of each one. :func:`bert_forward` runs the same operations on the same weights, read from
the model's modules on every call (training, ``load_state_dict`` or swapping a module is always seen):

* keys a query does not attend to (its unattended ``[MASK]`` padding) are masked with the boolean
  ``attend`` itself, no 4-D float mask is built (cutting them from the keys instead was measured slower:
  torch's CPU flash-attention kernel takes 50-100 us per layer for some key counts, 12 or 24, and a
  steady 60-70 us with a boolean mask over all 32);
* with ``packed=True``, each ``Linear`` multiplies against a copy of its weight kept in MKL's packed
  layout, made on first use for that input height and remade whenever the weight changes. It costs
  about as much memory again as the encoder layers' weights (resident; MiniLM-L6: about 42 MiB).

The result is the model's ``last_hidden_state`` to float rounding (bit-identical on the CPU builds
tested). Only transformers' ``BertModel`` in inference is served; :func:`unsupported_reason` says why
not otherwise and the caller then uses the model's own forward.

Examples
--------
>>> from transformers import BertConfig, BertModel
>>> model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
...                              intermediate_size=64, vocab_size=50)).eval()
>>> ids = torch.tensor([[2, 7, 9, 3, 5, 5]])
>>> attend = torch.tensor([[True, True, True, True, False, False]])
>>> ref = model(input_ids=ids, attention_mask=attend.long()).last_hidden_state
>>> bool(torch.allclose(bert_forward(model, ids, attend), ref, atol=1e-6))
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

#: Packed copies of weights, by the weight tensor: (version, data pointer, rows, packed).
_PACKED: WeakIdKeyDictionary = WeakIdKeyDictionary()


class Unsupported(Exception):
    """The model holds a module :func:`bert_forward` does not know (a wrapped or replaced layer)."""


def unsupported_reason(model) -> str | None:
    """Why :func:`bert_forward` cannot stand in for ``model.forward``, or None when it can.

    >>> unsupported_reason(torch.nn.Linear(2, 2))
    'Linear is not a transformers BertModel'
    """
    if type(model).__name__ != "BertModel" or not hasattr(model, "embeddings"):
        return f"{type(model).__name__} is not a transformers BertModel"
    config = model.config
    if model.training:
        return "the model is in training mode"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position embeddings {config.position_embedding_type!r} (only 'absolute')"
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return "the model is a decoder or has cross-attention"
    if getattr(config, "chunk_size_feed_forward", 0):
        return "chunked feed-forward"
    if config.hidden_size % config.num_attention_heads:
        return "the hidden size is not a multiple of the number of heads"
    if model.embeddings.word_embeddings.weight.device.type != "cpu":
        return "the weights are not on the CPU"
    return None


def mkl_packing_available() -> bool:
    """Whether this torch build has MKL's packed multiply (x86 builds with MKL; not macOS arm64)."""
    return bool(torch.backends.mkl.is_available()) and hasattr(torch.ops.mkl, "_mkl_linear")


def linear(x: torch.Tensor, layer: torch.nn.Module, packed: bool = False) -> torch.Tensor:
    """``layer(x)`` for a plain ``torch.nn.Linear``, through a packed weight when ``packed`` (fp32 CPU)."""
    if type(layer) is not torch.nn.Linear:
        raise Unsupported(f"{type(layer).__name__} where a torch.nn.Linear was expected")
    weight, bias = layer.weight, layer.bias
    if not packed or weight.dtype != torch.float32 or x.dtype != torch.float32 or not x.is_contiguous():
        return F.linear(x, weight, bias)
    rows = x.numel() // x.shape[-1]
    entry = _PACKED.get(weight)
    if entry is None or entry[:3] != (weight._version, weight.data_ptr(), rows):
        entry = (weight._version, weight.data_ptr(), rows, _pack(weight, rows))
        _PACKED[weight] = entry
    if entry[3] is None:
        return F.linear(x, weight, bias)
    return torch.ops.mkl._mkl_linear(x, entry[3], weight, bias, rows)


def _pack(weight: torch.Tensor, rows: int) -> torch.Tensor | None:
    """MKL's packed layout of ``weight`` for inputs of ``rows`` rows, or None where unavailable or not exact."""
    if not mkl_packing_available() or not weight.is_contiguous():
        return None
    with torch.inference_mode():
        try:
            packed = torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows)
            probe = torch.linspace(-1, 1, rows * weight.shape[1]).reshape(rows, weight.shape[1])
            got = torch.ops.mkl._mkl_linear(probe, packed, weight, None, rows)
        except (AttributeError, RuntimeError):  # an op missing from this build, or MKL refusing
            return None
        if not torch.allclose(got, F.linear(probe, weight), rtol=1e-5, atol=1e-5):
            return None
    return packed


def _layer_norm(x: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
    if type(layer) is not torch.nn.LayerNorm:
        raise Unsupported(f"{type(layer).__name__} where a torch.nn.LayerNorm was expected")
    return F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)


@torch.inference_mode()
def bert_forward(model, input_ids: torch.Tensor, attend: torch.Tensor, packed: bool = False) -> torch.Tensor:
    """``model(input_ids, attention_mask=attend).last_hidden_state`` for a ``BertModel`` (see module notes).

    Parameters
    ----------
    model : transformers.BertModel
        In eval mode on the CPU (check :func:`unsupported_reason` first).
    input_ids : torch.Tensor
        ``[batch, length]`` int64.
    attend : torch.Tensor
        ``[batch, length]`` bool: which positions the others may attend to.
    packed : bool
        Multiply through MKL-packed weights (see module notes).

    Raises
    ------
    Unsupported
        When a layer is not the plain torch module a ``BertModel`` has (the caller falls back).
    """
    batch, length = input_ids.shape
    config = model.config
    hidden, heads = int(config.hidden_size), int(config.num_attention_heads)
    emb = model.embeddings
    x = F.embedding(input_ids, emb.word_embeddings.weight) + emb.token_type_embeddings.weight[0]
    x = _layer_norm(x + emb.position_embeddings.weight[:length], emb.LayerNorm)
    mask = None if bool(attend.all()) else attend[:, None, None, :]
    for layer in model.encoder.layer:
        attention = layer.attention.self
        q, k, v = (
            linear(x, part, packed).view(batch, length, heads, hidden // heads).transpose(1, 2)
            for part in (attention.query, attention.key, attention.value)
        )
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=getattr(attention, "scaling", None))
        a = a.transpose(1, 2).reshape(batch, length, hidden)
        out = layer.attention.output
        x = _layer_norm(linear(a, out.dense, packed) + x, out.LayerNorm)
        up = linear(x, layer.intermediate.dense, packed)
        x = _layer_norm(
            linear(layer.intermediate.intermediate_act_fn(up), layer.output.dense, packed) + x,
            layer.output.LayerNorm,
        )
    return x
