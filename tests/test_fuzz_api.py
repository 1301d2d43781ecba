"""Property tests over the public API: every outcome is a result or one of lirlab's documented errors.

Documented errors: ``ValueError`` and its subclasses (``ArtifactError``, ``UnknownKnobError``),
``ModelLoadError``. Anything else (``TypeError``, ``IndexError``, ``KeyError``, ``OverflowError``,
``RuntimeError`` from torch ...) is a bug: an uncaught traceback from deep inside.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lirlab.data import Document, Query, as_documents, as_queries  # noqa: E402
from lirlab.encoder import ModelLoadError, checkpoint_format  # noqa: E402
from lirlab.params import MAX_INT, Param  # noqa: E402
from lirlab.storage import metadata_checksum  # noqa: E402

from .test_maxsim import random_encoding  # noqa: E402

DOCUMENTED = (ValueError, ModelLoadError)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text as users and command lines produce it: with lone surrogates, control characters, emoji, blanks.
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=30) | st.sampled_from(
    ["", " ", "\udce9", "caf\udce9", "\x00", "naïve 🐝", "a" * 500]
)
scalars = (
    st.none() | st.integers() | st.floats(allow_nan=True) | st.booleans() | texts | st.binary(max_size=5)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(texts | st.integers(), inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=8,
)


def frames():
    # object columns: with pyarrow installed, pandas stores inferred text columns as Arrow strings, which
    # refuse lone surrogates while the frame is built, so no such frame reached lirlab
    columns = st.lists(
        st.sampled_from(["qid", "query", "docno", "text", "title", "doc_id", "x"]), unique=True
    )
    return columns.flatmap(
        lambda cols: st.lists(st.tuples(*[scalars for _ in cols]), max_size=4).map(
            lambda rows: pd.DataFrame(rows, columns=cols, dtype=object)
        )
    )


def outcome(call):
    """The call's result, or the documented error it raised (anything else fails the test)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call()
        except DOCUMENTED as e:
            assert str(e) and "\n" not in str(e).strip(), f"error message should be one line: {e!r}"
            return e


@FUZZ
@given(st.one_of(values, frames(), st.lists(texts, max_size=5)))
def test_queries_in_any_shape(value):
    result = outcome(lambda: as_queries(value))
    if not isinstance(result, Exception):
        assert result and all(
            isinstance(q, Query) and isinstance(q.text, str) and q.text.strip() for q in result
        )
        assert all("\udce9" not in q.text for q in result)  # surrogates never reach a tokenizer
        assert len({q.qid for q in result}) == len(result)


@FUZZ
@given(st.one_of(values, frames(), st.dictionaries(texts, texts, max_size=5)))
def test_documents_in_any_shape(value):
    result = outcome(lambda: as_documents(value))
    if not isinstance(result, Exception):
        assert result and all(isinstance(d, Document) and isinstance(d.text, str) for d in result)
        if isinstance(value, pd.DataFrame):  # never the column names as documents
            assert len(result) == len(value)


def test_a_dataframe_of_documents_is_read_by_its_columns_or_refused():
    frame = pd.DataFrame({"docno": ["d1", "d2"], "text": ["Bees make honey.", "Lava flows."]})
    assert [d.docno for d in as_documents(frame)] == ["d1", "d2"]
    with pytest.raises(ValueError, match="needs an id column"):
        as_documents(pd.DataFrame({"body": ["Bees make honey."]}))


numbers = (
    st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        [float("nan"), float("inf"), -float("inf"), 10**30, 2**31, 2**31 - 1, np.int64(5), 1e300]
    )
)


@FUZZ
@given(numbers, st.sampled_from([int, float]), st.one_of(st.none(), st.integers(-5, 5)), st.booleans())
def test_params_accept_only_finite_numbers_in_range(value, kind, low, bounded):
    param = Param("knob", kind, None, "a knob", low=low, high=100 if bounded else None)
    result = outcome(lambda: param.validate(value))
    if isinstance(result, Exception):
        assert "knob" in str(result)
        return
    assert isinstance(result, kind) and math.isfinite(result)
    assert (low is None or result >= low) and result <= (
        100 if bounded else MAX_INT if kind is int else math.inf
    )


# ---------------------------------------------------------------- indexes


@pytest.fixture(scope="module")
def flat():
    from lirlab.index.flat import FlatIndex

    return FlatIndex(random_encoding([3, 5, 2, 7, 4, 6], dim=8, seed=2))


@pytest.fixture(scope="module")
def plaid():
    from lirlab.index.base import index_kind

    docs = random_encoding([5, 8, 3, 9, 6, 7, 4, 8, 5, 6] * 4, dim=8, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return index_kind("plaid").from_encoding(docs, n_centroids=8, nbits=2)


@pytest.fixture(scope="module")
def query():
    return random_encoding([4, 6], dim=8, seed=5, kind="query", prefix="q")


ks = st.one_of(
    st.integers(-3, 12), st.sampled_from([10**30, 2**31, 2**63]), st.floats(allow_nan=True), st.none(), texts
)
knob_values = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    texts,
)


@FUZZ
@given(
    k=ks,
    knobs=st.dictionaries(
        st.sampled_from(["n_probe", "ndocs", "centroid_score_threshold", "nprobe"]), knob_values
    ),
)
def test_search_encoded_with_any_k_and_knobs(flat, plaid, query, k, knobs):
    for index in (flat, plaid):
        own = {name: v for name, v in knobs.items() if name in index.SEARCH_PARAMS or name == "nprobe"}
        result = outcome(lambda index=index, own=own: index.search_encoded(query, k=k, **own))
        if not isinstance(result, Exception):
            assert len(result) == len(query)
            for positions, scores in result:
                assert len(positions) <= k and torch.isfinite(scores).all()


def test_nan_threshold_is_refused_not_silently_pruning_everything(plaid, query):
    with pytest.raises(ValueError, match="centroid_score_threshold must be a finite number"):
        plaid.search_encoded(query, k=3, centroid_score_threshold=float("nan"))
    with pytest.raises(ValueError, match="n_probe must be a finite number"):
        plaid.search_encoded(query, k=3, n_probe=float("inf"))


def mutations():
    """Edits of a metadata table: drop, retype or replace an entry anywhere (two levels deep)."""
    junk = st.one_of(
        st.none(), st.integers(-5, 10**12), st.text(max_size=8), st.lists(st.integers(), max_size=2)
    )
    return st.lists(
        st.tuples(st.sampled_from(["drop", "set"]), st.integers(0, 50), st.integers(0, 50), junk),
        min_size=1,
        max_size=3,
    )


def mutate(meta: dict, edits) -> dict:
    for action, i, j, value in edits:
        keys = sorted(meta)
        key = keys[i % len(keys)]
        inner = meta[key]
        if isinstance(inner, dict) and inner and j % 2:
            sub = sorted(inner)[j % len(inner)]
            if action == "drop":
                del inner[sub]
            else:
                inner[sub] = value
        elif action == "drop":
            del meta[key]
        else:
            meta[key] = value
    return meta


@pytest.fixture(scope="module")
def saved(tmp_path_factory, flat, plaid):
    root = tmp_path_factory.mktemp("saved")
    flat.save(root / "flat")
    plaid.save(root / "plaid")
    return root


@settings(FUZZ, max_examples=50)
@given(
    kind=st.sampled_from(["flat", "plaid"]), edits=mutations(), verify=st.booleans(), rechecksum=st.booleans()
)
def test_loading_tampered_metadata_is_an_artifact_error(saved, kind, edits, verify, rechecksum):
    """An edit of metadata.json is caught by its checksum, which cannot be dropped; one that also fixes
    the checksum by the loaders' structural checks, or it loads a working index."""
    from lirlab.index.base import load_index

    folder = saved / kind
    original = (folder / "metadata.json").read_text()
    meta = mutate(json.loads(original), edits)
    assume(meta != json.loads(original))
    if rechecksum and "checksum" in meta:  # as if edited by someone who knows the format
        meta["checksum"] = metadata_checksum(meta)
    (folder / "metadata.json").write_text(json.dumps(meta))
    try:
        result = outcome(lambda: load_index(folder, verify=verify))
        if not isinstance(result, Exception):
            assert rechecksum and "checksum" in meta  # only a consistent edit may load
            query = random_encoding([3], dim=8, seed=1, kind="query")
            result = outcome(lambda: result.search_encoded(query, k=2))
    finally:
        (folder / "metadata.json").write_text(original)
    if isinstance(result, Exception):
        assert isinstance(result, ValueError)  # ArtifactError, or an unknown type named by load_index


json_values = st.recursive(
    st.none() | st.integers() | st.booleans() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
module_entries = st.fixed_dictionaries(
    {
        "idx": st.integers(0, 3) | st.text(max_size=2),
        "type": st.sampled_from(["x.Transformer", "x.Dense", 3]),
        "path": st.sampled_from(["", "1_Dense", "../escape", "/etc", "a/../../b", 5]),
    }
)


@settings(FUZZ, max_examples=40)
@given(modules=st.one_of(json_values, st.lists(module_entries, max_size=3)))
def test_modules_json_of_any_shape_is_a_model_error_or_a_format(tmp_path_factory, modules):
    folder = tmp_path_factory.getbasetemp() / "fuzz-model"
    folder.mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules))
    result = outcome(lambda: checkpoint_format(folder))
    assert isinstance(result, (str, ModelLoadError))
    if isinstance(modules, list) and any(
        isinstance(m, dict) and m.get("path") in ("../escape", "/etc", "a/../../b") for m in modules
    ):
        assert isinstance(result, ModelLoadError)  # never a module outside the folder


def test_a_module_path_outside_the_model_folder_is_refused(tmp_path):
    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "type": "x.Dense", "path": "../../etc"}]))
    with pytest.raises(ModelLoadError, match="leads outside the model folder"):
        checkpoint_format(tmp_path)


def test_text_with_lone_surrogates_encodes(stanford):
    with pytest.warns(UnicodeWarning, match="not valid UTF-8"):
        encoded = stanford.encode_queries(["caf\udce9 au lait"])
    assert encoded.vectors.shape[0] > 0
    with pytest.raises(ValueError, match="no documents given"):
        stanford.encode_documents([], progress=False)
    with pytest.raises(ValueError, match="queries must be"):
        stanford.encode_queries(None)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: as_documents([Document(None, "Bees make honey.")]), "document id None is a NoneType"),
        (lambda: as_documents([Document(7, "Bees make honey.")]), "document id 7 is a int"),
        (lambda: as_documents({None: "Bees make honey."}), "document id None is a NoneType"),
        (lambda: as_documents({b"d1": "Bees make honey."}), "document id b'd1' is a bytes"),
        (
            lambda: as_documents(pd.DataFrame({"docno": [float("nan")], "text": ["Bees."]})),
            "document id nan is a float",
        ),
        (lambda: as_queries([Query(None, "bees")]), "query id None is a NoneType"),
        (lambda: as_queries({2.5: "bees"}), "query id 2.5 is a float"),
    ],
    ids=["none-record", "int-record", "none-key", "bytes-key", "nan-column", "none-query", "float-query"],
)
def test_ids_that_are_not_text_are_refused_in_one_line(make, message):
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "str(" in str(error.value) and "\n" not in str(error.value)


def test_whole_numbers_as_mapping_keys_or_columns_become_text_ids():
    assert [d.docno for d in as_documents({1: "a", np.int64(2): "b"})] == ["1", "2"]
    assert [d.docno for d in as_documents(pd.DataFrame({"docno": [3, 4], "text": ["a", "b"]}))] == ["3", "4"]


def test_plaid_add_refuses_a_document_whose_id_is_not_text(stanford):
    from lirlab.index.base import index_kind

    docs = [Document(f"d{i}", f"Document {i} is about bees and honey number {i}.") for i in range(12)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = index_kind("plaid").build(docs, stanford, n_centroids=4, nbits=2)
    with pytest.raises(ValueError, match="document id None is a NoneType"):
        index.add([Document(None, "Wasps make no honey.")], encoder=stanford)
    assert len(index) == 12 and "None" not in index.docnos


@pytest.mark.parametrize(
    "source, message",
    [
        (None, r"expected a path \(a str or pathlib.Path\), got NoneType"),
        (5, "got int 5"),
        (b"demo", "os.fsdecode"),
        ("beir\x00scifact", "NUL byte"),
        ("a" * 300, "300 bytes long"),
        ("/tmp/" + "a/" * 3000, "longer than the system allows"),
    ],
    ids=["none", "int", "bytes", "nul", "long-name", "long-path"],
)
@pytest.mark.parametrize("loader", ["load", "load_beir"])
def test_loading_a_dataset_from_a_bad_path_is_one_clear_line(source, message, loader):
    from lirlab import data

    with pytest.raises(ValueError, match=message) as error:
        getattr(data, loader)(source)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("bad_id", [None, 7, b"d1"], ids=["none", "int", "bytes"])
def test_plaid_add_refuses_encoded_documents_whose_id_is_not_text(plaid, bad_id):
    from dataclasses import replace

    before = (len(plaid), plaid.docnos)
    new = replace(random_encoding([3], dim=8, seed=9), ids=(bad_id,))
    with pytest.raises(ValueError, match=f"document id {bad_id!r} is a {type(bad_id).__name__}, not text"):
        plaid.add(new)
    assert (len(plaid), plaid.docnos) == before
