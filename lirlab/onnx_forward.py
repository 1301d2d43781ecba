"""Query vectors through ONNX Runtime, for encoding queries on CPUs where it is the fastest route.

On a 2-core AMD Zen 3 (AVX2, no AVX-512) one 32-token MiniLM query ran through ONNX Runtime in about
two thirds of the time of lirlab's own forward with MKL-packed weights (:mod:`lirlab.fast_bert`), which
is the faster of the two on an AVX-512 Xeon; :func:`fastest_query_forward` picks between them once per
process from the CPU's flags.

The transformer, the projections and the L2 normalization are exported to ONNX in memory as one graph
on first use (a few seconds for MiniLM) and exported again whenever a weight changes (training,
``load_state_dict``) or the torch thread count does, so it always computes what the torch modules
compute, to float rounding. One graph, not the transformer alone, because torch's threads, woken for the
projection after each run, spin and take the cores from ONNX Runtime's next run: one 32-token MiniLM
query took 14.7 ms with the projection in torch and about 10 ms with it in the graph (2-core Zen 3).
Sessions are kept per model, shared by every encoder built on it
(:meth:`~lirlab.encoder.ColBERT.with_config`).
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.weak import WeakIdKeyDictionary

from lirlab.cpu import onnx_cpu_session
from lirlab.fast_bert import Unsupported

#: Each model's latest export (:class:`_Export`).
_SESSIONS: WeakIdKeyDictionary = WeakIdKeyDictionary()

#: CPU flags under which the MKL-packed torch forward was measured faster than ONNX Runtime.
PACKED_FASTEST_WITH = ("avx512f",)


def fastest_query_forward(cpu_flags: set[str]) -> str:
    """``"onnxruntime"`` where it is installed and the CPU lacks AVX-512, else ``"packed"``."""
    if cpu_flags & set(PACKED_FASTEST_WITH) or importlib.util.find_spec("onnxruntime") is None:
        return "packed"
    return "onnxruntime"


class _QueryVectors(torch.nn.Module):
    def __init__(self, model, projections):
        super().__init__()
        self.model = model
        self.projections = torch.nn.ModuleList(projections)

    def forward(self, input_ids, attention_mask):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        for projection in self.projections:
            hidden = projection(hidden)
        return torch.nn.functional.normalize(hidden.float(), dim=-1)


class _Registrations:
    """How many parameters, buffers and submodules have been assigned to any module in this process
    since the first export: while it stands still, no model gained a tensor, and the tensors recorded
    at export tell whether a weight changed (an in-place change bumps ``_version``, a moved one its
    ``data_ptr``), without walking the model (0.8 ms a query for MiniLM, against 10 for the forward)."""

    count = 0

    @classmethod
    def watch(cls) -> None:
        if not getattr(cls, "_hooks", None):
            from torch.nn.modules import module

            cls._hooks = [
                module.register_module_parameter_registration_hook(cls._seen),
                module.register_module_buffer_registration_hook(cls._seen),
                module.register_module_module_registration_hook(cls._seen),
            ]

    @classmethod
    def _seen(cls, *_) -> None:
        cls.count += 1


@dataclass
class _Export:
    """A model's ONNX session (or why its export failed) and the tensors it was exported from."""

    registrations: int
    threads: int
    projections: tuple[int, ...]
    versions: tuple
    tensors: list[torch.Tensor]
    session: Any


def _tensors(model, projections) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers(), *(t for p in projections for t in p.parameters())]


def _versions(tensors: list[torch.Tensor]) -> tuple:
    return tuple((t.data_ptr(), t._version, t.shape) for t in tensors)


def _current_export(model, projections) -> _Export:
    """The model's export, made anew when a weight changed since the last one."""
    _Registrations.watch()
    threads, projection_ids = torch.get_num_threads(), tuple(map(id, projections))
    entry = _SESSIONS.get(model)
    same_setting = entry is not None and (entry.threads, entry.projections) == (threads, projection_ids)
    if (
        same_setting
        and entry.registrations == _Registrations.count
        and entry.versions == _versions(entry.tensors)
    ):
        return entry
    tensors = _tensors(model, projections)
    versions = _versions(tensors)
    if same_setting and entry.versions == versions:  # a module was built elsewhere; this model stands
        entry.registrations, entry.tensors = _Registrations.count, tensors
        return entry
    try:
        session = _session(model, projections)
    except Exception as error:  # noqa: BLE001 - any exporter failure means: use another forward
        session = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    # Counted after the export, which builds modules of its own.
    entry = _Export(_Registrations.count, threads, projection_ids, versions, tensors, session)
    _SESSIONS[model] = entry
    return entry


def _session(model, projections):
    example = (torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
    model_bytes = io.BytesIO()
    axes = {0: "batch", 1: "length"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _QueryVectors(model, projections).eval(),
            example,
            model_bytes,
            input_names=["input_ids", "attention_mask"],
            output_names=["vectors"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "vectors": axes},
            opset_version=17,
            dynamo=False,
        )
    return onnx_cpu_session(model_bytes.getvalue(), torch.get_num_threads())


def onnx_query_vectors(
    model, projections: Sequence[torch.nn.Module], input_ids: torch.Tensor, attend: torch.Tensor
) -> torch.Tensor:
    """L2-normalized ``projections`` of ``model(input_ids, attention_mask=attend).last_hidden_state``,
    float32, through ONNX Runtime (CPU tensors).

    Raises
    ------
    lirlab.fast_bert.Unsupported
        When the model cannot be exported (the caller then takes another forward); an export that
        failed is not tried again until the weights change.
    """
    entry = _current_export(model, projections)
    if isinstance(entry.session, str):
        raise Unsupported(f"the ONNX export failed ({entry.session})")
    feeds = {"input_ids": input_ids.numpy(), "attention_mask": attend.to(torch.long).numpy()}
    return torch.from_numpy(entry.session.run(None, feeds)[0])
