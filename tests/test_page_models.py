"""Page-image models (lirlab.page_encoder) on the tiny random fixtures of tests/fixtures/pages.

Parity: lirlab's vectors equal those of transformers' own classes used as their docs show
(``processor.process_images`` / ``process_queries`` then ``model(**batch).embeddings``), and those of
Sentence Transformers 6's ``MultiVectorEncoder`` on the same folders. Geometry: with a model made local
(every attention and MLP output projection zeroed, so a patch's vector depends on its own pixels only),
painting one patch of a white page red makes exactly the vector whose region is that patch match a
red query best, for portrait and landscape pages and each family's grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from lirlab.encoder import ColBERT, ModelLoadError
from lirlab.page_encoder import FAMILIES, PageEncoder, grid_boxes, page_family

PAGES = Path(__file__).resolve().parent / "fixtures" / "pages"
FAMILY_NAMES = sorted(FAMILIES)
QUERIES = ["what is the chart about", "table of 2024 revenue", "a"]


def noise_page(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


PAGES_IMAGES = [noise_page(60, 90, 0), noise_page(150, 70, 1), noise_page(300, 300, 2)]


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def encoder(family):
    return ColBERT.load(PAGES / family, device="cpu")


def reference(family: str):
    spec = FAMILIES[family]
    model = getattr(transformers, spec.model_class).from_pretrained(PAGES / family).eval()
    processor = getattr(transformers, spec.processor_class).from_pretrained(PAGES / family, backend="pil")
    return model, processor


def assert_rows_match(ours: torch.Tensor, theirs: torch.Tensor):
    assert ours.shape == theirs.shape
    cosines = torch.nn.functional.cosine_similarity(ours.float(), theirs.float(), dim=1)
    assert float(cosines.min()) >= 0.9999


def test_load_gives_a_page_encoder(encoder, family):
    assert isinstance(encoder, PageEncoder) and encoder.family == family
    assert page_family(PAGES / family) == family
    assert encoder.describe()["modality"] == "page" and encoder.dim == 16


def test_documents_match_transformers(encoder, family):
    model, processor = reference(family)
    batch = processor.process_images(images=PAGES_IMAGES)
    with torch.no_grad():
        embeddings = model(**batch).embeddings
    ours = encoder.encode_documents(PAGES_IMAGES, batch_size=len(PAGES_IMAGES), progress=False)
    for i in range(len(PAGES_IMAGES)):
        attended = batch["attention_mask"][i].bool()
        assert_rows_match(ours.vectors_of(i), embeddings[i][attended])
        theirs_ids = batch["input_ids"][i][attended]
        assert torch.equal(ours.token_ids_of(i), theirs_ids)
        image_positions = theirs_ids == processor.image_token_id
        assert torch.equal(ours.is_patch[ours.span(i)], image_positions)


def test_documents_do_not_depend_on_the_batch(encoder):
    together = encoder.encode_documents(PAGES_IMAGES, batch_size=3, progress=False)
    alone = encoder.encode_documents(PAGES_IMAGES, batch_size=1, progress=False)
    assert torch.equal(together.lengths, alone.lengths)
    assert_rows_match(together.vectors, alone.vectors)
    assert torch.equal(together.regions.nan_to_num(-1), alone.regions.nan_to_num(-1))


def test_queries_match_transformers_and_keep_ten_buffers(encoder, family):
    model, processor = reference(family)
    batch = processor.process_queries(text=QUERIES)
    with torch.no_grad():
        embeddings = model(**batch).embeddings
    ours = encoder.encode_queries(QUERIES)
    for i in range(len(QUERIES)):
        attended = batch["attention_mask"][i].bool()
        assert_rows_match(ours.vectors_of(i), embeddings[i][attended])
        assert torch.equal(ours.token_ids_of(i), batch["input_ids"][i][attended])
        assert int(ours.mask_positions(i).sum()) == 10
        assert ours.tokens(i)[ours.mask_positions(i).nonzero()[0]] == processor.query_augmentation_token


def test_query_buffers_follow_the_mask_settings(encoder):
    none = encoder.with_config(query_maxlen=0).encode_queries(QUERIES)
    assert int((none.token_ids == none.mask_token_id).sum()) == 0
    padded = encoder.with_config(query_maxlen=16).encode_queries(QUERIES)
    bare_lengths = none.lengths
    assert padded.lengths.tolist() == [max(16, int(n)) for n in bare_lengths]
    hidden = encoder.with_config(attend_to_mask_tokens=False).encode_queries(QUERIES)
    seen = encoder.encode_queries(QUERIES)
    assert torch.equal(hidden.lengths, seen.lengths)
    # the buffers' vectors are kept when hidden from attention, and are no longer the same
    assert not torch.allclose(hidden.vectors[hidden.token_ids == hidden.mask_token_id],
                              seen.vectors[seen.token_ids == seen.mask_token_id])  # fmt: skip


def test_regions_tile_the_page(encoder, family):
    pages = encoder.encode_documents(PAGES_IMAGES, progress=False)
    for i in range(len(pages)):
        boxes = pages.regions_of(i)[pages.is_patch[pages.span(i)]]
        assert float(boxes.min()) >= 0 and float(boxes.max()) <= 1
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        views = [boxes]
        if family == "colmodernvbert":
            is_global = pages.global_view[pages.span(i)][pages.is_patch[pages.span(i)]]
            views = [boxes[~is_global], boxes[is_global]]
            assert int(is_global.sum()) == 16
        for view in views:  # each view covers the page exactly once
            areas = (view[:, 2] - view[:, 0]) * (view[:, 3] - view[:, 1])
            assert float(areas.sum()) == pytest.approx(1.0, abs=1e-5)


# -------------------------------------------------------------------------------------- geometry

#: Parameters whose zeroing leaves each layer the identity on its residual stream: attention and MLP
#: output projections (SigLIP, Qwen2-VL's vision blocks, Gemma, Qwen2, ModernBERT) and SigLIP's
#: absolute position embeddings. What is left maps each patch's pixels to its vector alone.
LOCAL_ZERO = (
    "out_proj",
    "o_proj",
    "down_proj",
    "fc2",
    "attn.proj",
    "attn.Wo",
    "mlp.Wo",
    "position_embedding",
)

#: (page size, painted cell as a pixel box, the grid it is a cell of) per family and orientation.
GEOMETRY = {
    "colpali": [((112, 224), (28, 112, 56, 168)), ((224, 112), (168, 28, 224, 56))],  # 4 x 4, squeezed
    "colqwen2": [((84, 140), (56, 84, 84, 112)), ((168, 84), (112, 28, 140, 56))],  # 28 px cells
    "colmodernvbert": [((64, 128), (32, 80, 48, 96)), ((128, 64), (80, 16, 96, 32))],  # 16 px cells
}


@pytest.fixture(scope="module")
def local_encoder(family):
    encoder = ColBERT.load(PAGES / family, device="cpu")
    with torch.no_grad():
        for name, parameter in encoder.model.named_parameters():
            if any(f"{part}." in name for part in LOCAL_ZERO):
                parameter.zero_()
    return encoder


@pytest.mark.parametrize("orientation", [0, 1], ids=["portrait", "landscape"])
def test_the_best_matching_region_is_the_painted_patch(local_encoder, family, orientation):
    (width, height), box = GEOMETRY[family][orientation]
    page = Image.new("RGB", (width, height), "white")
    page.paste((220, 20, 20), box)
    red = Image.new("RGB", (width, height), (220, 20, 20))
    encoded = local_encoder.encode_documents({"page": page, "red": red}, progress=False)
    fine = encoded.is_patch & (
        ~encoded.global_view if encoded.global_view is not None else torch.ones_like(encoded.is_patch)
    )
    query = encoded.vectors[encoded.span(1)][fine[encoded.span(1)]][0]
    rows = encoded.span(0)
    scores = (encoded.vectors[rows] @ query).masked_fill(~fine[rows], -2)
    best = int(scores.argmax())
    expected = torch.tensor([box[0] / width, box[1] / height, box[2] / width, box[3] / height])
    assert torch.allclose(encoded.regions[rows][best], expected, atol=1e-6)
    # its pixels are red (up to the resize's blur at its edges) and no other patch's are
    runner_up = float(scores.topk(2).values[1])
    assert float(scores[best]) > 0.99 and runner_up < float(scores[best]) - 0.01
    if encoded.global_view is not None:  # the global image's best patch covers the painted one
        coarse = (encoded.vectors[rows] @ query).masked_fill(~encoded.global_view[rows], -2)
        x0, y0, x1, y1 = encoded.regions[rows][int(coarse.argmax())].tolist()
        assert x0 <= expected[0] and y0 <= expected[1] and x1 >= expected[2] and y1 >= expected[3]


def test_grid_boxes_are_row_major():
    boxes = grid_boxes(2, 3)
    assert boxes[4].tolist() == pytest.approx([1 / 3, 0.5, 2 / 3, 1.0])


# ----------------------------------------------------------------------------- inputs and errors


def test_pages_from_files_and_pdfs(encoder, tmp_path):
    pytest.importorskip("pypdfium2")
    from lirlab.page_data import render_pdf_page

    PAGES_IMAGES[0].save(tmp_path / "p.png")
    PAGES_IMAGES[2].save(tmp_path / "doc.pdf", save_all=True, append_images=[PAGES_IMAGES[0]])
    from_files = encoder.encode_documents(
        {"png": tmp_path / "p.png", "pdf2": (tmp_path / "doc.pdf", 2)}, progress=False
    )
    direct = encoder.encode_documents(
        [PAGES_IMAGES[0], render_pdf_page(tmp_path / "doc.pdf", 2)], progress=False
    )
    assert from_files.ids == ("png", "pdf2")
    assert_rows_match(from_files.vectors, direct.vectors)
    with pytest.raises(ValueError, match=r"pass \(.*page_number\)"):
        encoder.encode_documents([tmp_path / "doc.pdf"], progress=False)


def test_a_page_model_that_cannot_load_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "colpali"}))
    with pytest.raises(ModelLoadError) as error:
        ColBERT.load(tmp_path, device="cpu")
    assert "colpali" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ModelLoadError, match="unknown page encoder setting"):
        ColBERT.load(PAGES / "colpali", device="cpu", doc_maxlen=12)


# ------------------------------------------------------------------------- Sentence Transformers 6


@pytest.fixture(scope="module")
def st_model(family):
    st = pytest.importorskip("sentence_transformers")
    return st.MultiVectorEncoder(str(PAGES / family), device="cpu", processor_kwargs={"backend": "pil"})


def test_queries_match_sentence_transformers(encoder, st_model):
    theirs = st_model.encode_query(QUERIES)
    ours = encoder.encode_queries(QUERIES)
    for i, vectors in enumerate(theirs):
        mine = ours.vectors_of(i)
        if encoder.family == "colmodernvbert":  # ST6 drops its buffers (<end_of_utterance>) from the output
            mine = mine[~ours.mask_positions(i)]
        assert_rows_match(mine, torch.as_tensor(vectors))


def test_documents_match_sentence_transformers(encoder, st_model, family):
    if family == "colmodernvbert":
        pytest.skip(
            "Sentence Transformers 6.3 cannot encode ColModernVBert images (its processor gets no text)"
        )
    theirs = st_model.encode_document(PAGES_IMAGES)
    ours = encoder.encode_documents(PAGES_IMAGES, progress=False)
    for i, vectors in enumerate(theirs):
        assert_rows_match(ours.vectors_of(i), torch.as_tensor(vectors))


def test_a_folder_sentence_transformers_saved_loads(st_model, encoder, tmp_path):
    st_model.save(str(tmp_path / "st"))
    loaded = ColBERT.load(tmp_path / "st", device="cpu")
    assert isinstance(loaded, PageEncoder) and loaded.family == encoder.family
    assert_rows_match(loaded.encode_queries(QUERIES).vectors, encoder.encode_queries(QUERIES).vectors)


def test_a_qwen2_5_vl_backbone_loads_as_colqwen2(tmp_path):
    """ColQwen2ForRetrieval over a Qwen2.5-VL backbone (as ColQwen2.5 checkpoints converted to transformers)."""
    settings = json.loads((PAGES / "colqwen2" / "config.json").read_text())["vlm_config"]
    settings["model_type"] = "qwen2_5_vl"
    settings["text_config"]["model_type"] = "qwen2_5_vl_text"
    settings["vision_config"] = {"model_type": "qwen2_5_vl", "depth": 1, "hidden_size": 32, "out_hidden_size": 32,
                                 "num_heads": 2, "intermediate_size": 64, "fullatt_block_indexes": [0]}  # fmt: skip
    torch.manual_seed(0)
    model = transformers.ColQwen2ForRetrieval(
        transformers.ColQwen2Config(vlm_config=settings, embedding_dim=16)
    )
    model.save_pretrained(tmp_path)
    _, processor = reference("colqwen2")
    processor.save_pretrained(tmp_path)
    encoder = ColBERT.load(tmp_path, device="cpu")
    assert type(encoder.model.vlm).__name__ == "Qwen2_5_VLModel"
    batch = processor.process_images(images=PAGES_IMAGES)
    with torch.no_grad():
        embeddings = model.eval()(**batch).embeddings
    ours = encoder.encode_documents(PAGES_IMAGES, batch_size=len(PAGES_IMAGES), progress=False)
    for i in range(len(PAGES_IMAGES)):
        assert_rows_match(ours.vectors_of(i), embeddings[i][batch["attention_mask"][i].bool()])
    _, height, width = batch["image_grid_thw"][0].tolist()
    assert int(ours.is_patch[ours.span(0)].sum()) == height * width // 4


def test_the_mask_analyses_run_on_a_page_model():
    """The query_maxlen curve varies the augmentation buffers of a page model as it varies [MASK] padding."""
    import io

    import pandas as pd

    from lirlab.analysis.masks import query_maxlen_curve
    from lirlab.data import Dataset, Query
    from lirlab.page_data import Page

    def png(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    docs = tuple(Page(f"p{i}", None, data=png(image)) for i, image in enumerate(PAGES_IMAGES))
    queries = tuple(Query(f"q{i}", text) for i, text in enumerate(QUERIES))
    qrels = pd.DataFrame(
        {"query_id": ["q0", "q1", "q2"], "doc_id": ["p0", "p1", "p2"], "relevance": [1, 1, 1]}
    )
    pages = Dataset("noise pages", docs, queries, qrels)
    encoder = ColBERT.load(PAGES / "colpali", device="cpu")
    curve = query_maxlen_curve(
        encoder, pages, query_maxlens=(0, 24), attend=(True,), ablate_at=(24,), progress=False
    )
    buffers = curve.set_index(["query_maxlen", "masks_used"])["mean_masks"]
    lengths = encoder.with_config(query_maxlen=0).encode_queries(pages.queries).lengths.float()
    assert buffers[(0, False)] == 0
    assert buffers[(24, True)] == pytest.approx(float((24 - lengths).clamp(min=0).mean()))
    assert buffers[(24, False)] == 0  # the ablation row drops them
