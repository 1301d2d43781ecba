"""Exact int8 matrix products on the CPU, by the route this processor runs fastest.

The int8 first passes (MaxSim's bound pass, k-means' nearest centroids) need ``A @ B`` of int8
matrices summed exactly in int32. Two routes compute it:

* ``"torch"``: :func:`torch._int_mm`, fast where the CPU has int8 dot-product instructions (VNNI,
  AMX-INT8, Arm's dot product); elsewhere it is a plain loop, slower than float32.
* ``"onnxruntime"``: ONNX Runtime's ``MatMulInteger`` (its MLAS kernels: ``vpmaddubsw`` on AVX2,
  VNNI where present). ``vpmaddubsw`` adds two ``uint8 x int8`` products into a saturating int16, so
  the right-hand matrix must stay within ``±63`` (:data:`RIGHT_LEVELS`): ``2 x 255 x 63 < 2**15``,
  and the sum is exact on every kernel MLAS has.

The route is chosen once per process from the CPU's flags (:func:`int8_route`) and reported in
:func:`lirlab.machine.describe_machine`; every caller can force either one, so a CI machine of any kind
checks both against float32.

Examples
--------
>>> a = torch.tensor([[1, -2], [3, 4]], dtype=torch.int8).repeat(16, 8)
>>> b = torch.tensor([[5, 6], [-7, 8]], dtype=torch.int8).repeat(8, 4)
>>> bool((int8_mm(a, b, "torch") == a.int() @ b.int()).all())
True
>>> bool((int8_mm(a, b, "onnxruntime") == a.int() @ b.int()).all())
True
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import torch

from lirlab.cpu import cpu_flags, onnx_cpu_session

ROUTES = ("torch", "onnxruntime")

#: How far from zero each route's right-hand matrix may go (the left one may use all of ``±127``).
RIGHT_LEVELS = {"torch": 127, "onnxruntime": 63}

#: CPU flags under which :func:`torch._int_mm` runs dot-product instructions.
INT8_DOT_INSTRUCTIONS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")

#: CPU flags under which MLAS has a ``vpmaddubsw`` kernel, measured faster than float32 (AVX2: about
#: 3x on a 2-core AMD Zen 3, :mod:`lirlab.bench.core`).
MLAS_INT8_INSTRUCTIONS = ("avx2",)

#: ``uint8`` = ``int8 + 128``: the zero point ONNX Runtime subtracts back, exactly, in int32.
ZERO_POINT = 128


@functools.lru_cache(maxsize=1)
def int8_route() -> str | None:
    """The fastest exact int8 route on this CPU, or ``None`` where no route beats float32.

    ``"torch"`` with int8 dot-product instructions (and :func:`torch._int_mm`), else ``"onnxruntime"``
    on AVX2 when ONNX Runtime is installed, else ``None``. Chosen once per process.
    """
    flags = cpu_flags()
    if getattr(torch, "_int_mm", None) is not None and flags & set(INT8_DOT_INSTRUCTIONS):
        return "torch"
    if flags & set(MLAS_INT8_INSTRUCTIONS) and importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime"
    return None


def check_route(route: str) -> None:
    """Refuse an unknown route, or ``"onnxruntime"`` without ONNX Runtime installed, in one line."""
    if route not in ROUTES:
        raise ValueError(f"int8 route must be one of {', '.join(ROUTES)}, got {route!r}")
    if route == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        raise ValueError("the 'onnxruntime' int8 route needs ONNX Runtime: pip install onnxruntime")


def int8_mm(left: torch.Tensor, right: torch.Tensor, route: str) -> torch.Tensor:
    """``left @ right`` of int8 matrices ``[m, k] @ [k, n]``, exact, as int32.

    ``right`` must stay within ``±RIGHT_LEVELS[route]``. The torch route needs ``m > 16`` and ``k``,
    ``n`` multiples of 8 (:func:`torch._int_mm`'s limits).
    """
    if route == "torch":
        return torch._int_mm(left, right)
    return torch.from_numpy(_session("product").run(None, _feeds(left, right))[0])


def int8_max_over_rows(
    rows: torch.Tensor, right: torch.Tensor, n_groups: int, group_rows: int, route: str, out: torch.Tensor
) -> None:
    """``out[g] = max over the group's rows of (rows @ right)``, for ``n_groups`` consecutive groups of
    ``group_rows`` rows each (a block of equal-length documents): ``out`` is ``[n_groups, n]`` int32.

    ONNX Runtime reduces inside its graph, so the ``[rows, n]`` products never reach memory whole."""
    if route == "torch":
        products = torch._int_mm(rows, right).view(n_groups, group_rows, right.shape[1])
        torch.amax(products, dim=1, out=out)
        return
    feeds = _feeds(rows, right)
    feeds["shape"] = np.array([n_groups, group_rows, right.shape[1]], dtype=np.int64)
    out.copy_(torch.from_numpy(_session("max_over_rows").run(None, feeds)[0]))


def as_uint8(rows: torch.Tensor) -> torch.Tensor:
    """An int8 matrix as ONNX Runtime's left operand (``uint8`` with :data:`ZERO_POINT`): convert once
    and pass the result as ``left``/``rows`` to skip the conversion on every product."""
    return (rows.to(torch.int16) + ZERO_POINT).to(torch.uint8)


def _feeds(left: torch.Tensor, right: torch.Tensor) -> dict[str, np.ndarray]:
    if left.dtype == torch.int8:
        left = as_uint8(left)
    return {"left": left.contiguous().numpy(), "right": right.contiguous().numpy()}


@functools.cache
def _sessions(threads: int) -> dict:
    import onnx
    from onnx import TensorProto, helper

    left = helper.make_tensor_value_info("left", TensorProto.UINT8, ["rows", "inner"])
    right = helper.make_tensor_value_info("right", TensorProto.INT8, ["inner", "columns"])
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [3])
    result = helper.make_tensor_value_info("result", TensorProto.INT32, None)
    zero_point = helper.make_tensor("zero_point", TensorProto.UINT8, [], [ZERO_POINT])
    product = helper.make_node("MatMulInteger", ["left", "right", "zero_point"], ["product"])
    graphs = {
        "product": helper.make_graph(
            [helper.make_node("MatMulInteger", ["left", "right", "zero_point"], ["result"])],
            "int8_product",
            [left, right],
            [result],
            initializer=[zero_point],
        ),
        "max_over_rows": helper.make_graph(
            [
                product,
                helper.make_node("Reshape", ["product", "shape"], ["grouped"]),
                helper.make_node("ReduceMax", ["grouped"], ["result"], axes=[1], keepdims=0),
            ],
            "int8_max_over_rows",
            [left, right, shape],
            [result],
            initializer=[zero_point],
        ),
    }
    return {
        name: onnx_cpu_session(
            onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
            threads,
        )
        for name, graph in graphs.items()
    }


def _session(name: str):
    """ONNX Runtime sessions are built once per thread count: they follow ``torch.set_num_threads``."""
    return _sessions(torch.get_num_threads())[name]
