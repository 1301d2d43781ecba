"""The encoder: checkpoint formats, markers, [MASK] augmentation, skiplist, truncation, bad models."""

from __future__ import annotations

import string
import warnings

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from lirlab.encoder import ColBERT, ModelLoadError, NotColBERTWarning, checkpoint_format

from .checkpoints import write_pylate, write_stanford

QUERIES = ["What do honeybees eat in winter?", "caldera collapse"]
DOCS = [
    "Honeybees survive winter by eating stored honey, clustering for warmth.",
    "A caldera forms when a volcano's magma chamber empties and the summit collapses!",
]


def reference_vectors(folder, linear, texts, marker, maxlen, query):
    """colbert-ai's recipe written out by hand: '. ' + text, marker put over the '.', pads become [MASK]."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(
        [". " + t for t in texts],
        padding="max_length" if query else "longest",
        truncation=True,
        max_length=maxlen,
        return_tensors="pt",
    )
    ids, attention = batch["input_ids"], batch["attention_mask"]
    ids[:, 1] = tokenizer.convert_tokens_to_ids(marker)
    if query:
        ids[ids == tokenizer.pad_token_id] = tokenizer.mask_token_id
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=attention).last_hidden_state
    vectors = torch.nn.functional.normalize(hidden @ linear.T, dim=-1)
    out = []
    skip = {tokenizer.convert_tokens_to_ids(p) for p in string.punctuation}
    for row, ids_row, att in zip(vectors, ids, attention):
        if query:
            out.append((ids_row.tolist(), row))
        else:
            keep = att.bool() & torch.tensor([int(t) not in skip for t in ids_row])
            out.append((ids_row[keep].tolist(), row[keep]))
    return out


def assert_matches(encoding, reference):
    for i, (ids, vectors) in enumerate(reference):
        assert encoding.token_ids_of(i).tolist() == ids
        cosine = (encoding.vectors_of(i) * vectors).sum(dim=1)
        assert cosine.min() >= 0.9999


def test_formats_are_detected(stanford_dir, pylate_dir, minilm_dir):
    assert checkpoint_format(stanford_dir) == "stanford"
    assert checkpoint_format(pylate_dir) == "pylate"
    assert checkpoint_format(minilm_dir) == "huggingface"


def test_stanford_queries_match_the_colbert_recipe(stanford, stanford_dir, linear):
    encoded = stanford.encode_queries(QUERIES)
    assert encoded.lengths.tolist() == [32, 32]
    tokens = encoded.tokens(1)
    assert tokens[:2] == ["[CLS]", "[unused0]"]
    first_mask = tokens.index("[SEP]") + 1
    assert tokens[first_mask:] == ["[MASK]"] * (32 - first_mask)
    assert encoded.mask_positions(1).tolist() == [i >= first_mask for i in range(32)]
    assert_matches(encoded, reference_vectors(stanford_dir, linear, QUERIES, "[unused0]", 32, query=True))


def test_stanford_documents_drop_punctuation_and_match(stanford, stanford_dir, linear):
    encoded = stanford.encode_documents(DOCS, progress=False)
    for i in range(len(DOCS)):
        tokens = encoded.tokens(i)
        assert tokens[:2] == ["[CLS]", "[unused1]"] and tokens[-1] == "[SEP]"
        assert not set(tokens) & set(string.punctuation)
    assert encoded.truncated == (False, False)
    assert_matches(encoded, reference_vectors(stanford_dir, linear, DOCS, "[unused1]", 180, query=False))


def test_pylate_layouts_give_the_same_vectors_as_stanford(stanford, pylate_dir, minilm_dir, linear, tmp_path):
    nested = ColBERT.load(write_pylate(minilm_dir, tmp_path / "nested", linear, nested=True), device="cpu")
    for encoder in (ColBERT.load(pylate_dir, device="cpu"), nested):
        assert encoder.config.checkpoint_format == "pylate" and encoder.dim == 128
        for a, b in (
            (encoder.encode_queries(QUERIES), stanford.encode_queries(QUERIES)),
            (encoder.encode_documents(DOCS, progress=False), stanford.encode_documents(DOCS, progress=False)),
        ):
            assert torch.equal(a.token_ids, b.token_ids)
            assert (a.vectors * b.vectors).sum(dim=1).min() >= 0.9999


def test_attend_to_mask_tokens_changes_real_token_vectors(stanford_dir):
    attending = ColBERT.load(stanford_dir, device="cpu", attend_to_mask_tokens=True)
    blind = ColBERT.load(stanford_dir, device="cpu")
    a, b = attending.encode_queries(QUERIES[:1]), blind.encode_queries(QUERIES[:1])
    assert torch.equal(a.token_ids, b.token_ids)
    assert (a.vectors[:3] * b.vectors[:3]).sum(dim=1).max() < 0.9999


def test_old_stanford_metadata_falls_back_to_defaults(minilm_dir, linear, tmp_path):
    folder = write_stanford(
        minilm_dir,
        tmp_path / "old",
        linear,
        query_token_id=None,
        doc_token_id=None,
        doc_maxlen=None,
        attend_to_mask_tokens=None,
    )
    encoder = ColBERT.load(folder, device="cpu")
    assert encoder.config.query_marker == "[unused0]" and encoder.config.doc_marker == "[unused1]"
    assert encoder.config.doc_maxlen == 220 and encoder.config.query_augmentation


def test_plain_encoder_has_no_markers_and_no_augmentation(plain):
    assert plain.config.checkpoint_format == "huggingface" and plain.dim == 384
    assert not plain.config.query_augmentation
    encoded = plain.encode_queries(["bees"])
    assert encoded.tokens(0) == ["[CLS]", "bees", "[SEP]"]
    assert "query_augmentation=False" in repr(plain)


def test_overrides_markers_lengths_and_augmentation(stanford_dir):
    encoder = ColBERT.load(stanford_dir, device="cpu", query_maxlen=8, doc_maxlen=6, query_marker="[unused3]")
    queries = encoder.encode_queries(["a much longer question than eight tokens allow here"])
    assert queries.tokens(0)[1] == "[unused3]" and queries.lengths.tolist() == [8]
    assert queries.truncated == (True,)
    docs = encoder.encode_documents(["one two three four five six seven", "one"], progress=False)
    assert docs.truncated == (True, False)
    assert docs.tokens(0) == ["[CLS]", "[unused1]", "one", "two", "three", "[SEP]"]
    off = ColBERT.load(stanford_dir, device="cpu", query_maxlen=0)
    assert not off.config.query_augmentation
    assert off.encode_queries(["bees"]).tokens(0) == ["[CLS]", "[unused0]", "bees", "[SEP]"]
    with pytest.raises(ValueError, match="unknown encoder setting"):
        ColBERT.load(stanford_dir, device="cpu", query_len=8)


def test_skiplist_override_keeps_punctuation(stanford_dir):
    encoder = ColBERT.load(stanford_dir, device="cpu", skiplist=())
    assert "!" in encoder.encode_documents(["stop!"], progress=False).tokens(0)


def test_empty_document_keeps_special_tokens(stanford):
    encoded = stanford.encode_documents({"empty": "", "full": "bees"}, progress=False)
    assert encoded.tokens(0) == ["[CLS]", "[unused1]", "[SEP]"]


def test_empty_query_is_an_error(stanford):
    with pytest.raises(ValueError, match="empty"):
        stanford.encode_queries(["bees", "   "])


def test_encoding_is_independent_of_batching(stanford):
    texts = [DOCS[0], DOCS[1], "short", DOCS[0] + " " + DOCS[1]]
    whole = stanford.encode_documents(texts, batch_size=4, progress=False)
    single = stanford.encode_documents(texts, batch_size=1, progress=False)
    assert torch.equal(whole.token_ids, single.token_ids)
    assert (whole.vectors * single.vectors).sum(dim=1).min() > 0.9999


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        ColBERT.load(tmp_path)
    with pytest.raises(ModelLoadError, match="is a file"):
        ColBERT.load(tmp_path / "notes.txt")
    with pytest.raises(ModelLoadError, match="no model folder"):
        ColBERT.load(tmp_path / "missing")


def test_unreachable_hub_gives_one_clear_message_or_the_minilm_fallback(minilm_dir):
    with pytest.raises(ModelLoadError, match="--model minilm"):
        ColBERT.load("nobody/no-such-colbert-model")
    with pytest.warns(NotColBERTWarning, match="NOT a ColBERT-trained model"):
        encoder = ColBERT.load("nobody/no-such-colbert-model", fallback_to_minilm=True, device="cpu")
    assert encoder.name == "minilm" and not encoder.config.query_augmentation


def test_stanford_checkpoint_without_projection_is_rejected(minilm_dir, linear, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = write_stanford(minilm_dir, tmp_path / "broken", linear)
    weights = load_file(str(folder / "model.safetensors"))
    del weights["linear.weight"]
    save_file(weights, str(folder / "model.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ModelLoadError, match="linear.weight"):
            ColBERT.load(folder)


def test_encoded_queries_keep_their_texts(stanford):
    encoded = stanford.encode_queries({"q1": "what do bees eat", "q2": "winter"})
    assert encoded.ids == ("q1", "q2") and encoded.texts == ("what do bees eat", "winter")


@pytest.mark.parametrize("setting", ["doc_maxlen", "query_maxlen"])
def test_a_length_beyond_the_models_positions_is_one_line_naming_the_limit(stanford_dir, stanford, setting):
    with pytest.raises(ValueError, match=rf"^{setting}=600 .*512 positions.*{setting}=512 or less"):
        ColBERT.load(stanford_dir, device="cpu", **{setting: 600})
    with pytest.raises(ValueError, match=rf"^{setting}=513 "):
        stanford.with_config(**{setting: 513})
    assert getattr(stanford.with_config(**{setting: 512}).config, setting) == 512
