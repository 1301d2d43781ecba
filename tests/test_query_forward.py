"""The lean query path (lirlab.fast_bert, the tokenizer backend called directly) against the transformers path."""

from __future__ import annotations

import pytest
import torch

from lirlab import fast_bert
from lirlab.cpu import cpu_flags
from lirlab.data import Query
from lirlab.encoder import QUERY_FORWARDS, ColBERT
from lirlab.onnx_forward import fastest_query_forward

EDGE_QUERIES = [
    "bees",
    "What do honeybees eat in winter?",
    " ".join(["caldera"] * 80),  # far past query_maxlen: cut
    "Ünïcödé café naïve 日本語 ﬁ — “quotes” ½",
    "?!... ;;; ---",  # punctuation only
    "x",
    "[MASK] [SEP] [unused0]",  # special-token names as plain text
    "tab\tand\nnewline  spaces",
]


@pytest.fixture(scope="module")
def encoders(stanford_dir):
    """One encoder per query path, all sharing one model."""
    base = ColBERT.load(stanford_dir, device="cpu", query_forward="transformers")
    return {name: _with_forward(base, name) for name in QUERY_FORWARDS}


def _with_forward(encoder: ColBERT, query_forward: str) -> ColBERT:
    other = encoder.with_config()
    other.query_forward = query_forward
    return other


def _assert_same(a, b, tolerance=1e-5):
    assert torch.equal(a.token_ids, b.token_ids)
    assert torch.equal(a.offsets, b.offsets)
    assert float((a.vectors - b.vectors).abs().max()) <= tolerance


FAST_FORWARDS = ["lean", "packed", "onnxruntime", "auto"]


@pytest.mark.parametrize("query_forward", FAST_FORWARDS)
def test_one_query_at_a_time_matches_the_transformers_forward(encoders, query_forward):
    for text in EDGE_QUERIES:
        _assert_same(
            encoders[query_forward].encode_queries([text]), encoders["transformers"].encode_queries([text])
        )
    cut = encoders[query_forward].encode_queries([EDGE_QUERIES[2]])
    assert cut.truncated == (True,) and cut.lengths.tolist() == [32]


@pytest.mark.parametrize("query_forward", FAST_FORWARDS)
def test_batches_of_unequal_queries_match(encoders, query_forward):
    """Rows of a batch attend to different numbers of keys; each must get what it gets alone."""
    fast = encoders[query_forward].encode_queries(EDGE_QUERIES, batch_size=3)
    _assert_same(fast, encoders["transformers"].encode_queries(EDGE_QUERIES))
    single = [encoders[query_forward].encode_queries([t]) for t in EDGE_QUERIES]
    for i, one in enumerate(single):
        assert float((fast.vectors_of(i) - one.vectors).abs().max()) <= 1e-5


@pytest.mark.parametrize(
    "settings", [{"attend_to_mask_tokens": True}, {"query_maxlen": 0}, {"query_maxlen": 8}]
)
def test_other_query_settings_match(encoders, settings):
    reference = encoders["transformers"].with_config(**settings)
    for name in FAST_FORWARDS:
        fast = encoders[name].with_config(**settings)
        assert fast.query_forward == (fastest_query_forward(cpu_flags()) if name == "auto" else name)
        for text in EDGE_QUERIES[:4]:
            _assert_same(fast.encode_queries([text]), reference.encode_queries([text]))


def test_backend_tokenization_gives_the_tokenizer_ids(encoders):
    encoder = encoders["lean"]
    assert encoder._backend_agrees
    for text in EDGE_QUERIES:
        assert encoder._pieces([text]) == encoder.tokenizer([text], add_special_tokens=False)["input_ids"]


def test_truncation_left_on_the_tokenizer_does_not_cut_queries(stanford_dir):
    encoder = ColBERT.load(stanford_dir, device="cpu")
    expected = encoder.encode_queries(["what do honeybees eat in winter"]).token_ids
    encoder.tokenizer(["one two three four five"], truncation=True, max_length=3)  # leaves truncation set
    assert encoder.tokenizer._tokenizer.truncation is not None
    assert torch.equal(encoder.encode_queries(["what do honeybees eat in winter"]).token_ids, expected)


@pytest.mark.parametrize("query_forward", ["packed", "onnxruntime"])
def test_changed_weights_are_seen(stanford_dir, query_forward):
    """Packed weights and the ONNX export are remade when a weight changes in place, and a replaced
    module is read anew."""
    encoder = ColBERT.load(stanford_dir, device="cpu", query_forward=query_forward)
    reference = _with_forward(encoder, "transformers")
    before = encoder.encode_queries(["honeybees in winter"])
    with torch.no_grad():
        encoder.model.encoder.layer[0].attention.self.query.weight.mul_(1.5)
        encoder.model.encoder.layer[-1].output.dense.bias.add_(0.1)
    after = encoder.encode_queries(["honeybees in winter"])
    assert float((after.vectors - before.vectors).abs().max()) > 1e-3
    _assert_same(after, reference.encode_queries(["honeybees in winter"]))
    old = encoder.model.get_input_embeddings()
    encoder.model.resize_token_embeddings(old.weight.shape[0] + 8, mean_resizing=False)
    with torch.no_grad():
        encoder.model.get_input_embeddings().weight.mul_(0.5)
    _assert_same(
        encoder.encode_queries(["honeybees in winter"]), reference.encode_queries(["honeybees in winter"])
    )
    before = encoder.encode_queries(["honeybees in winter"])
    with torch.no_grad():
        encoder.projections[0].weight[:8].add_(0.5)
    after = encoder.encode_queries(["honeybees in winter"])
    assert float((after.vectors - before.vectors).abs().max()) > 1e-3
    _assert_same(after, reference.encode_queries(["honeybees in winter"]))


def test_without_mkl_packing_and_with_a_wrapped_layer_the_results_hold(stanford_dir, monkeypatch):
    encoder = ColBERT.load(stanford_dir, device="cpu")
    reference = _with_forward(encoder, "transformers").encode_queries(EDGE_QUERIES[:3])
    monkeypatch.setattr(fast_bert, "mkl_packing_available", lambda: False)
    fast_bert._PACKED.clear()
    _assert_same(encoder.encode_queries(EDGE_QUERIES[:3]), reference)
    assert all(entry[3] is None for entry in fast_bert._PACKED.values())

    class Wrapped(torch.nn.Module):  # what an adapter library does to a Linear
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    attention = encoder.model.encoder.layer[0].attention.self
    attention.value = Wrapped(attention.value)
    with pytest.raises(fast_bert.Unsupported, match="Wrapped"):
        fast_bert.bert_forward(encoder.model, torch.tensor([[101, 102]]), torch.tensor([[True, True]]))
    _assert_same(encoder.encode_queries(EDGE_QUERIES[:3]), reference)


def test_models_the_lean_forward_does_not_serve(stanford):
    assert fast_bert.unsupported_reason(stanford.model) is None
    stanford.model.train()
    try:
        assert fast_bert.unsupported_reason(stanford.model) == "the model is in training mode"
    finally:
        stanford.model.eval()
    assert "not a transformers BertModel" in fast_bert.unsupported_reason(torch.nn.Linear(2, 2))


def test_unknown_query_forward_is_one_line_error(stanford_dir):
    with pytest.raises(ValueError, match="query_forward must be one of"):
        ColBERT.load(stanford_dir, device="cpu", query_forward="onnx")


def test_query_encoding_benchmark_reports_its_baselines(stanford):
    from lirlab.bench.query_encoding import query_encoding_latency

    result = query_encoding_latency(
        stanford, [Query(str(i), t) for i, t in enumerate(EDGE_QUERIES)], 3, runs=2
    )
    assert result["queries"] == 3 and result["query_forward"] in ("packed", "onnxruntime")
    assert set(result["variants"]) == {
        "lirlab",
        "packed",
        "onnxruntime",
        "lean",
        "transformers",
        "bare_forward",
    } - {result["query_forward"]}
    assert all(len(v["p50_ms_per_run"]) == 2 and v["p50_ms"] > 0 for v in result["variants"].values())
    assert result["variants"]["transformers"]["ratio_to_transformers"] == 1.0
    assert result["parity_with_transformers"]["min_cosine"] >= 0.9999
    assert result["order"] == "blocks"


@pytest.mark.parametrize("order", ["blocks", "interleaved"])
def test_each_order_times_every_variant_once_per_query_and_pass(stanford, order, monkeypatch):
    from lirlab.bench import query_encoding

    calls = []
    encode = ColBERT.encode_queries

    def logged(self, queries, *args, **kwargs):
        calls.append((self.query_forward, queries[0].text))
        return encode(self, queries, *args, **kwargs)

    monkeypatch.setattr(ColBERT, "encode_queries", logged)
    monkeypatch.setattr(query_encoding, "_bare_forward", lambda e: lambda text: calls.append(("bare", text)))
    texts = EDGE_QUERIES[:3]
    result = query_encoding.query_encoding_latency(
        stanford, [Query(str(i), t) for i, t in enumerate(texts)], 3, order=order
    )
    n = len(result["variants"])  # lirlab as configured, the three other forwards, the bare forward
    assert n == 5 and result["runs"] == n
    assert all(len(v["p50_ms_per_run"]) == n for v in result["variants"].values())
    timed = calls[n * 3 : n * 3 + n * n * 3]  # after the warm-up (n variants x 3 queries), n passes
    if order == "blocks":  # per pass, each variant encodes all queries in a row; the first one rotates
        blocks = [timed[i : i + 3] for i in range(0, len(timed), 3)]
        assert all([t for _, t in b] == texts and len({v for v, _ in b}) == 1 for b in blocks)
        firsts = [blocks[n * run][0][0] for run in range(n)]
        others = [name for name in QUERY_FORWARDS if name not in ("auto", stanford.query_forward)]
        assert firsts == [stanford.query_forward, *others, "bare"]
    else:  # every query is encoded by all variants before the next one
        assert [t for _, t in timed] == [t for t in texts for _ in range(n)] * n
    with pytest.raises(ValueError, match="order must be one of"):
        query_encoding.query_encoding_latency(stanford, [Query("0", "x")], 1, order="random")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx2", "fma"}, "onnxruntime"), ({"avx2", "avx512f"}, "packed"), (set(), "onnxruntime")],
)
def test_auto_takes_the_forward_measured_fastest_on_this_kind_of_cpu(
    stanford_dir, flags, expected, monkeypatch
):
    monkeypatch.setattr("lirlab.encoder.cpu_flags", lambda: frozenset(flags))
    assert ColBERT.load(stanford_dir, device="cpu").query_forward == expected


def test_auto_keeps_the_packed_forward_without_onnxruntime(monkeypatch):
    from lirlab import onnx_forward

    monkeypatch.setattr(onnx_forward.importlib.util, "find_spec", lambda name: None)
    assert onnx_forward.fastest_query_forward(frozenset({"avx2"})) == "packed"


def test_a_model_that_cannot_be_exported_is_encoded_by_its_own_forward(stanford_dir, monkeypatch):
    from lirlab import onnx_forward

    encoder = ColBERT.load(stanford_dir, device="cpu", query_forward="onnxruntime")
    reference = _with_forward(encoder, "transformers").encode_queries(EDGE_QUERIES[:3])
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(1)
        raise RuntimeError("Unsupported operator\nmore detail")

    monkeypatch.setattr(onnx_forward.torch.onnx, "export", refuse)
    _assert_same(encoder.encode_queries(EDGE_QUERIES[:3]), reference)
    encoder.encode_queries(EDGE_QUERIES[:1])
    assert len(attempts) == 1  # not tried again on every query
    with pytest.raises(
        fast_bert.Unsupported, match=r"ONNX export failed \(RuntimeError: Unsupported operator\)"
    ):
        onnx_forward.onnx_query_vectors(
            encoder.model, encoder.projections, torch.tensor([[101, 102]]), torch.tensor([[True, True]])
        )


def test_the_onnx_export_is_made_once_while_the_model_stands_still(stanford_dir, monkeypatch):
    from lirlab import onnx_forward

    exports = []
    export = onnx_forward._session

    def counted(*args):
        exports.append(1)
        return export(*args)

    monkeypatch.setattr(onnx_forward, "_session", counted)
    encoder = ColBERT.load(stanford_dir, device="cpu", query_forward="onnxruntime")
    for text in EDGE_QUERIES:
        encoder.encode_queries([text])
    torch.nn.Linear(2, 2)  # a module built elsewhere changes no tensor of this model
    encoder.encode_queries(EDGE_QUERIES[:1])
    assert len(exports) == 1
    dense = encoder.model.encoder.layer[0].output.dense
    dense.bias = torch.nn.Parameter(dense.bias.detach() + 0.1)  # a new tensor, not changed in place
    reference = _with_forward(encoder, "transformers")
    _assert_same(encoder.encode_queries(EDGE_QUERIES[:1]), reference.encode_queries(EDGE_QUERIES[:1]))
    assert len(exports) == 2
