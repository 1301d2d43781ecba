"""BERT's forward through ONNX Runtime, for encoding queries on CPUs where it is the fastest route.

On a 2-core AMD Zen 3 (AVX2, no AVX-512) one 32-token MiniLM query ran through ONNX Runtime in about
two thirds of the time of lirlab's own forward with MKL-packed weights (:mod:`lirlab.fast_bert`), which
is the faster of the two on an AVX-512 Xeon; :func:`fastest_query_forward` picks between them once per
process from the CPU's flags.

The model is exported to ONNX in memory on first use (a few seconds for MiniLM) and exported again
whenever a weight changes (training, ``load_state_dict``) or the torch thread count does, so it always
computes what the model's own forward computes: ``last_hidden_state`` to float rounding. Sessions are
kept per model, shared by every encoder built on it (:meth:`~lirlab.encoder.ColBERT.with_config`).
"""

from __future__ import annotations

import importlib.util
import io
import warnings

import torch
from torch.utils.weak import WeakIdKeyDictionary

from lirlab.cpu import onnx_cpu_session
from lirlab.fast_bert import Unsupported

#: Sessions by model: (stamp of its weights and the thread count, session).
_SESSIONS: WeakIdKeyDictionary = WeakIdKeyDictionary()

#: CPU flags under which the MKL-packed torch forward was measured faster than ONNX Runtime.
PACKED_FASTEST_WITH = ("avx512f",)


def fastest_query_forward(cpu_flags: set[str]) -> str:
    """``"onnxruntime"`` where it is installed and the CPU lacks AVX-512, else ``"packed"``."""
    if cpu_flags & set(PACKED_FASTEST_WITH) or importlib.util.find_spec("onnxruntime") is None:
        return "packed"
    return "onnxruntime"


class _LastHiddenState(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _stamp(model) -> tuple:
    tensors = [*model.parameters(), *model.buffers()]
    return torch.get_num_threads(), tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors)


def _session(model):
    example = (torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
    model_bytes = io.BytesIO()
    axes = {0: "batch", 1: "length"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(model).eval(),
            example,
            model_bytes,
            input_names=["input_ids", "attention_mask"],
            output_names=["hidden"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes},
            opset_version=17,
            dynamo=False,
        )
    return onnx_cpu_session(model_bytes.getvalue(), torch.get_num_threads())


def onnx_forward(model, input_ids: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
    """``model(input_ids, attention_mask=attend).last_hidden_state`` through ONNX Runtime (CPU tensors).

    Raises
    ------
    lirlab.fast_bert.Unsupported
        When the model cannot be exported (the caller then takes another forward); an export that
        failed is not tried again until the weights change.
    """
    stamp = _stamp(model)
    entry = _SESSIONS.get(model)
    if entry is None or entry[0] != stamp:
        try:
            entry = (stamp, _session(model))
        except Exception as error:  # noqa: BLE001 - any exporter failure means: use another forward
            entry = (stamp, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        _SESSIONS[model] = entry
    if isinstance(entry[1], str):
        raise Unsupported(f"the ONNX export failed ({entry[1]})")
    feeds = {"input_ids": input_ids.numpy(), "attention_mask": attend.to(torch.long).numpy()}
    return torch.from_numpy(entry[1].run(None, feeds)[0])
