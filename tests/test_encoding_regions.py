"""Page geometry on the encoding record: regions travel through select, to, concat and token pooling."""

import math

import pytest
import torch

from lirlab.encoding import Encoding
from lirlab.index.pooling import Pooling, pool_encoding

NAN = float("nan")


def grid_page(doc_id: str, rows: int, cols: int, n_text: int = 2, seed: int = 0) -> Encoding:
    """A page of ``rows x cols`` patches (row-major) after ``n_text`` text tokens."""
    generator = torch.Generator().manual_seed(seed)
    n = n_text + rows * cols
    vectors = torch.nn.functional.normalize(torch.randn(n, 8, generator=generator), dim=1)
    boxes = [[NAN] * 4] * n_text + [
        [c / cols, r / rows, (c + 1) / cols, (r + 1) / rows] for r in range(rows) for c in range(cols)
    ]
    return Encoding(
        ids=(doc_id,),
        vectors=vectors,
        token_ids=torch.tensor([0] * n_text + [1] * (rows * cols)),
        offsets=torch.tensor([0, n]),
        vocab=("<bos>", "<image>"),
        regions=torch.tensor(boxes, dtype=torch.float32),
    )


def test_text_encodings_have_no_regions():
    text = Encoding(("d",), torch.eye(2), torch.tensor([0, 1]), torch.tensor([0, 2]), ("a", "b"))
    assert text.regions is None and text.global_view is None
    assert text.is_patch.tolist() == [False, False]
    with pytest.raises(ValueError, match="no regions"):
        text.regions_of(0)


def test_regions_shape_is_checked():
    with pytest.raises(ValueError, match=r"regions must be \[2, 4\]"):
        Encoding(("d",), torch.eye(2), torch.tensor([0, 1]), torch.tensor([0, 2]), ("a", "b"),
                 regions=torch.zeros(3, 4))  # fmt: skip


def test_select_to_concat_carry_regions():
    a, b = grid_page("a", 2, 3), grid_page("b", 3, 2, n_text=1, seed=1)
    both = Encoding.concat([a, b])
    assert both.regions.shape == (6 + 2 + 6 + 1, 4)
    picked = both.select([1, 0])
    assert torch.equal(picked.regions_of(0).nan_to_num(-1), b.regions.nan_to_num(-1))
    assert torch.equal(picked.regions_of(1).nan_to_num(-1), a.regions.nan_to_num(-1))
    assert picked.is_patch.tolist() == [False] + [True] * 6 + [False] * 2 + [True] * 6
    assert picked.to("cpu").regions.shape == picked.regions.shape


def test_pages_and_text_do_not_concatenate():
    text = Encoding(
        ("t",), torch.eye(8)[:2], torch.tensor([0, 1]), torch.tensor([0, 2]), ("<bos>", "<image>")
    )
    with pytest.raises(ValueError, match="cannot concatenate page-image encodings"):
        Encoding.concat([grid_page("a", 2, 2), text])


def test_pooled_regions_are_bounding_boxes_of_the_merged_patches():
    page = grid_page("p", 4, 6)
    pooled, pooling = pool_encoding(page, 3, protect=())
    assert pooled.regions.shape == (len(pooled.vectors), 4)
    for vector, members in enumerate(pooling.group_regions(0)):
        patches = members[~members.isnan().any(dim=1)]
        if len(patches) == 0:
            assert pooled.regions[vector].isnan().all()
            continue
        expected = torch.cat([patches[:, :2].min(dim=0).values, patches[:, 2:].max(dim=0).values])
        assert torch.equal(pooled.regions[vector], expected)
    # every original patch is inside the box of the pooled vector it was merged into
    boxes = pooled.regions[pooling.assignment]
    patch = page.is_patch
    assert (page.regions[patch, :2] >= boxes[patch, :2]).all()
    assert (page.regions[patch, 2:] <= boxes[patch, 2:]).all()
    assert math.ceil(26 / 3) == len(pooled.vectors)


def test_pooling_keeps_the_patch_mapping_through_arrays_select_and_concat():
    pages = Encoding.concat([grid_page("a", 3, 3), grid_page("b", 2, 4, seed=2)])
    pooled, pooling = pool_encoding(pages, 2, protect=())
    restored = Pooling.from_arrays(pooling.arrays(), pooling.pooled_offsets, pooling.vocab, 2)
    assert torch.equal(restored.original_regions.nan_to_num(-1), pages.regions.nan_to_num(-1))
    only_b = pooling.select([1])
    assert torch.equal(only_b.original_regions.nan_to_num(-1), pages.select([1]).regions.nan_to_num(-1))
    again = Pooling.concat([pooling.select([0]), only_b])
    assert torch.equal(again.original_regions.nan_to_num(-1), pages.regions.nan_to_num(-1))


def test_pooling_global_view_only_when_all_merged_patches_are_global():
    page = grid_page("p", 2, 2, n_text=0)
    global_view = torch.tensor([False, False, True, True])
    page = Encoding(page.ids, page.vectors[[0, 0, 1, 1]], page.token_ids, page.offsets, page.vocab,
                    regions=page.regions, global_view=global_view)  # fmt: skip
    pooled, pooling = pool_encoding(page, 2, protect=())
    assert pooling.groups(0) == [[0, 1], [2, 3]]
    assert pooled.global_view.tolist() == [False, True]
