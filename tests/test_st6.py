"""Sentence Transformers 6: folders ``MultiVectorEncoder.save_pretrained`` writes, read with its own vectors.

The fixture ``tests/fixtures/st6-minilm-colbert`` was saved by Sentence Transformers 6.3 itself (its
``make.py``); the weights are put back at test time. Parity is checked against
``MultiVectorEncoder.encode_query`` / ``encode_document`` on the same folder, so these tests skip where
sentence-transformers is not installed; the settings tests read the committed files alone.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import string
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lirlab.encoder import ColBERT, ModelLoadError

from .checkpoints import projection
from .conftest import shared_dataset

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "st6-minilm-colbert"

SHORT_QUERIES = [
    "what do bees eat?",
    "COVID-19 vaccine efficacy, in adults (65+)",
    "Ünïcödé café naïve — “quotes”",
    "a",
]
#: Longer than the 32-token expansion floor; the last one longer than the 48-token query_length ceiling too.
LONG_QUERIES = [
    "does the use of statins in elderly patients with chronic kidney disease reduce the rate of "
    "cardiovascular events and all cause mortality compared with placebo over five years",
    " ".join(["transcription factor binding sites in the promoter region of inflammatory genes"] * 6),
]
DOCUMENTS = [
    "Honeybees eat nectar and pollen; in winter they live on stored honey.",
    "Statins (HMG-CoA reductase inhibitors) lower LDL cholesterol: a meta-analysis of 27 trials!",
    " ".join(["The quick brown fox, jumps over the lazy dog."] * 30),
    "",
]


def _materialize(target: Path, minilm_dir: Path) -> Path:
    spec = importlib.util.spec_from_file_location("st6_fixture_make", FIXTURE / "make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    return make.materialize(target, minilm_dir, projection())


@pytest.fixture(scope="module")
def st6_dir(minilm_dir, tmp_path_factory) -> Path:
    return _materialize(tmp_path_factory.mktemp("st6"), minilm_dir)


def _variant(st6_dir: Path, tmp_path: Path, **expansion) -> Path:
    """A copy of the fixture with other query expansion settings in its ``sentence_bert_config.json``."""
    folder = tmp_path / "variant"
    shutil.copytree(st6_dir, folder)
    file = folder / "sentence_bert_config.json"
    config = json.loads(file.read_text())
    if expansion.get("strategy") is None:
        config["query_expansion"] = None
    else:
        config["query_expansion"] = {**config["query_expansion"], **expansion}
    file.write_text(json.dumps(config))
    return folder


def _reference(folder: Path):
    st = pytest.importorskip("sentence_transformers")
    return st.MultiVectorEncoder(str(folder), device="cpu", local_files_only=True)


def reference(model, texts: list[str], task: str) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Sentence Transformers' vectors of ``texts`` and the token ids they stand for (its scoring mask)."""
    encode = model.encode_query if task == "query" else model.encode_document
    features = encode(texts, batch_size=3, output_value=None)
    kept = [f["attention_mask"].bool() for f in features]
    vectors = [f["token_embeddings"][k].float().cpu() for f, k in zip(features, kept)]
    return vectors, [f["input_ids"][k].tolist() for f, k in zip(features, kept)]


def assert_parity(encoding, model, texts: list[str], task: str) -> None:
    """Per text: the same token ids (markers, [MASK] expansion, skiplist) and vectors at cosine >= 0.9999."""
    vectors, ids = reference(model, texts, task)
    assert len(encoding) == len(texts)
    for i, (expected, expected_ids) in enumerate(zip(vectors, ids)):
        assert encoding.token_ids_of(i).tolist() == expected_ids, (task, i, encoding.tokens(i))
        ours = encoding.vectors_of(i)
        assert ours.shape == expected.shape, (task, i)
        cosine = torch.nn.functional.cosine_similarity(ours, expected, dim=-1)
        assert float(cosine.min()) >= 0.9999, (task, i, float(cosine.min()))


# -- reading the layout --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expansion",
    [
        {},
        {"strategy": "fixed", "length": 24},
        {"strategy": "min", "attend": True},
        {"strategy": None},
    ],
    ids=["saved-min", "fixed-24", "min-attend", "no-expansion"],
)
def test_vectors_equal_sentence_transformers(st6_dir, tmp_path, expansion):
    folder = _variant(st6_dir, tmp_path, **expansion) if expansion else st6_dir
    model = _reference(folder)
    encoder = ColBERT.load(folder, device="cpu")
    queries = SHORT_QUERIES + LONG_QUERIES
    assert_parity(encoder.encode_queries(queries, batch_size=3), model, queries, "query")
    assert_parity(
        encoder.encode_documents(DOCUMENTS, batch_size=3, progress=False), model, DOCUMENTS, "document"
    )


def test_saved_settings_are_read(st6_dir):
    """The fixture's settings as lirlab reads them, from the files Sentence Transformers 6.3 wrote."""
    encoder = ColBERT.load(st6_dir, device="cpu")
    c = encoder.config
    assert c.checkpoint_format == "sentence_transformers"
    assert (c.query_marker, c.doc_marker) == ("[unused0]", "[unused1]")
    assert (c.query_minlen, c.query_maxlen, c.doc_maxlen) == (32, 48, 180)
    assert c.query_augmentation and not c.attend_to_mask_tokens
    assert set(c.skiplist) == set(string.punctuation)
    short, middle, long = encoder.encode_queries(["bees", LONG_QUERIES[0], LONG_QUERIES[1]]).lengths.tolist()
    assert short == 32 and 32 < middle < 48 and long == 48
    tokens = encoder.encode_queries(["bees"]).tokens(0)
    assert tokens[:4] == ["[CLS]", "[unused0]", "bees", "[SEP]"] and set(tokens[4:]) == {"[MASK]"}
    assert "," not in encoder.encode_documents(["bees, wasps"], progress=False).tokens(0)


def _edit(st6_dir: Path, tmp_path: Path, file: str, **changes) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(st6_dir, folder)
    path = folder / file
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return folder


@pytest.mark.parametrize(
    ("file", "changes", "named"),
    [
        ("config_sentence_transformers.json", {"prompts": {"query": "query: ", "document": ""}}, "query: "),
        ("2_MultiVectorMask/config.json", {"skiplist_tasks": ["query", "document"]}, "skiplist_tasks"),
        ("2_MultiVectorMask/config.json", {"keep_only_token_ids": [5]}, "keep_only_token_ids"),
        ("sentence_bert_config.json", {"query_expansion": {"strategy": "max", "length": 32}}, "'max'"),
    ],
)
def test_what_lirlab_cannot_reproduce_is_refused_in_one_line(st6_dir, tmp_path, file, changes, named):
    folder = _edit(st6_dir, tmp_path, file, **changes)
    with pytest.raises(ModelLoadError, match="Sentence Transformers|supported|expansion") as caught:
        ColBERT.load(folder, device="cpu")
    assert named in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_module_is_refused(st6_dir, tmp_path):
    folder = tmp_path / "pooled"
    shutil.copytree(st6_dir, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(3, {"idx": 3, "name": "3", "path": "3_Pool", "type": "x.HierarchicalTokenPooling"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="HierarchicalTokenPooling"):
        ColBERT.load(folder, device="cpu")


def test_min_floor_stays_below_the_ceiling(st6_dir):
    encoder = ColBERT.load(st6_dir, device="cpu")
    assert encoder.with_config(query_maxlen=64).encode_queries(["bees"]).lengths.tolist() == [32]
    with pytest.raises(ValueError, match="query_minlen"):
        encoder.with_config(query_maxlen=16)


# -- a model held in memory ----------------------------------------------------------------------------


def test_in_memory_model_is_an_encoder_for_indexes_and_explanations(st6_dir):
    from lirlab.analysis.alignment import explain_hit
    from lirlab.index.flat import FlatIndex

    model = _reference(st6_dir)
    encoder = ColBERT.from_sentence_transformers(model)
    assert encoder.model is model[0].auto_model and encoder.projections[0] is model[1].linear
    queries = ["what do bees eat?", LONG_QUERIES[0]]
    assert_parity(encoder.encode_queries(queries), model, queries, "query")

    index = FlatIndex.build(DOCUMENTS, encoder, progress=False)
    run = index.search(queries, k=len(DOCUMENTS))
    # Sentence Transformers' own MaxSim scores of the same texts rank the documents the same way.
    expected = model.similarity(model.encode_query(queries), model.encode_document(DOCUMENTS)).cpu()
    for qid, hits in run.groupby("qid", sort=True):
        ours = torch.tensor(hits.sort_values("docno").score.tolist())
        assert torch.allclose(ours, expected[int(qid) - 1].float(), atol=1e-3), qid
    top = run[run.qid == "1"].sort_values("rank").iloc[0]
    alignment, note = explain_hit(index, encoder.encode_queries(["what do bees eat?"]), top.docno, encoder)
    assert note == "" and abs(alignment.score - top.score) < 1e-3
    assert alignment.query_tokens[1] == "[unused0]"

    with pytest.raises(TypeError, match="MultiVectorEncoder"):
        ColBERT.from_sentence_transformers(model[0])


# -- writing the layout --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["stanford", "st6-min", "prepared-minilm"])
def test_written_folder_gives_lirlabs_vectors_in_sentence_transformers(source, request, st6_dir, tmp_path):
    from lirlab.st6 import write_sentence_transformers

    if source == "stanford":
        encoder = ColBERT.load(
            request.getfixturevalue("stanford_dir"), device="cpu", attend_to_mask_tokens=True
        )
    elif source == "st6-min":
        encoder = ColBERT.load(st6_dir, device="cpu")
    else:
        from lirlab.train import prepare_encoder

        encoder = prepare_encoder(ColBERT.load("minilm", device="cpu"), query_maxlen=24, doc_maxlen=64)
    out = tmp_path / "written"
    out.mkdir()
    write_sentence_transformers(encoder, out)
    model = _reference(out)
    queries = SHORT_QUERIES + LONG_QUERIES
    assert_parity(encoder.encode_queries(queries, batch_size=3), model, queries, "query")
    assert_parity(
        encoder.encode_documents(DOCUMENTS, batch_size=3, progress=False), model, DOCUMENTS, "document"
    )
    assert ColBERT.load(out, device="cpu").config == replace(
        encoder.config, checkpoint_format="sentence_transformers"
    )


@pytest.mark.realdata
@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_vectors_equal_sentence_transformers_on_real_texts(st6_dir, dataset):
    """24 queries and 24 documents of each dataset, where lirlab once differed on every text (issue 25)."""
    folder = shared_dataset(dataset)
    model = _reference(st6_dir)
    encoder = ColBERT.load(st6_dir, device="cpu")

    def first(name: str, n: int) -> list[dict]:
        with open(folder / name, encoding="utf-8") as f:
            return [json.loads(line) for line, _ in zip(f, range(n))]

    queries = [q["text"] for q in first("queries.jsonl", 24)]
    docs = [f"{d.get('title', '')} {d['text']}".strip() for d in first("corpus.jsonl", 24)]
    assert_parity(encoder.encode_queries(queries, batch_size=8), model, queries, "query")
    assert_parity(encoder.encode_documents(docs, batch_size=8, progress=False), model, docs, "document")
