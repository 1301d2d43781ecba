"""Both int8 routes give the exact int32 products on any CPU, at the extremes of their ranges too."""

from __future__ import annotations

import pytest
import torch

from lirlab import int8_products
from lirlab.int8_products import RIGHT_LEVELS, ROUTES, check_route, int8_max_over_rows, int8_mm, int8_route


def extreme_operands(route: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random values, then rows and columns at the range's ends, where a saturating int16 sum breaks."""
    g = torch.Generator().manual_seed(seed)
    right_levels = RIGHT_LEVELS[route]
    left = torch.randint(-127, 128, (48, 64), generator=g, dtype=torch.int8)
    right = torch.randint(-right_levels, right_levels + 1, (64, 24), generator=g, dtype=torch.int8)
    left[0], left[1], left[2] = 127, -127, torch.tensor([127, -127] * 32)
    right[:, 0], right[:, 1] = right_levels, -right_levels
    return left, right


@pytest.mark.parametrize("route", ROUTES)
def test_int8_mm_is_the_exact_integer_product(route):
    left, right = extreme_operands(route)
    assert torch.equal(int8_mm(left, right, route), left.int() @ right.int())
    assert int8_mm(left, right, route).dtype == torch.int32


def test_a_wider_right_operand_would_overflow_the_avx2_route():
    """Why the ONNX Runtime route keeps its right operand within ±63: two products of 255 x 127 exceed
    an int16, and MLAS's AVX2 kernel adds pairs in int16."""
    assert 2 * 255 * RIGHT_LEVELS["onnxruntime"] < 2**15 <= 2 * 255 * 127


@pytest.mark.parametrize("route", ROUTES)
def test_max_over_rows_takes_each_groups_maximum(route):
    left, right = extreme_operands(route, seed=1)
    out = torch.full((6, 24), -1, dtype=torch.int32)
    int8_max_over_rows(left, right, 6, 8, route, out=out)
    assert torch.equal(out, (left.int() @ right.int()).view(6, 8, 24).amax(dim=1))


@pytest.mark.parametrize("route", ROUTES)
def test_max_over_rows_writes_into_a_column_slice(route):
    left, right = extreme_operands(route, seed=2)
    out = torch.zeros(6, 30, dtype=torch.int32)
    int8_max_over_rows(left, right, 6, 8, route, out=out[:, 3:27])
    assert torch.equal(out[:, 3:27], (left.int() @ right.int()).view(6, 8, 24).amax(dim=1))
    assert not out[:, :3].any() and not out[:, 27:].any()


@pytest.mark.parametrize(
    ("flags", "has_int_mm", "has_onnxruntime", "expected"),
    [
        ({"avx2", "avx512_vnni"}, True, True, "torch"),
        ({"asimd", "asimddp"}, True, False, "torch"),
        ({"avx2", "fma"}, True, True, "onnxruntime"),
        ({"avx2", "avx512_vnni"}, False, True, "onnxruntime"),
        ({"avx2", "fma"}, True, False, None),
        ({"sse4_2"}, True, True, None),
    ],
)
def test_the_route_follows_the_cpu_flags(flags, has_int_mm, has_onnxruntime, expected, monkeypatch):
    monkeypatch.setattr(int8_products, "cpu_flags", lambda: frozenset(flags))
    if not has_int_mm:
        monkeypatch.delattr(torch, "_int_mm")
    real_find_spec = int8_products.importlib.util.find_spec
    monkeypatch.setattr(
        int8_products.importlib.util,
        "find_spec",
        lambda name: (
            (real_find_spec(name) if has_onnxruntime else None)
            if name == "onnxruntime"
            else real_find_spec(name)
        ),
    )
    int8_route.cache_clear()
    try:
        assert int8_route() == expected
    finally:
        monkeypatch.undo()
        int8_route.cache_clear()


def test_unknown_or_missing_routes_are_refused_in_one_line(monkeypatch):
    with pytest.raises(ValueError, match="int8 route must be one of torch, onnxruntime, got 'avx'"):
        check_route("avx")
    monkeypatch.setattr(int8_products.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install onnxruntime"):
        check_route("onnxruntime")
