"""The registry of index kinds and foreign formats: torch-free listing, folders opened by what they
record first, every kind saved and reloaded as itself, a test's own kind found at every edge."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index import registry
from lirlab.index.base import Index, StageTimer, load_index
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.index.warp import WarpIndex
from lirlab.params import Param
from lirlab.storage import ArtifactError

FIXTURES = Path(__file__).parent / "fixtures"
BUILT_IN = ("bm25", "bm25_rerank", "flat", "muvera", "plaid", "qdrant", "warp")


def random_docs(n_docs: int = 40, length: int = 10, dim: int = 16, seed: int = 0) -> Encoding:
    g = torch.Generator().manual_seed(seed)
    return Encoding(
        ids=tuple(f"d{i}" for i in range(n_docs)),
        vectors=torch.nn.functional.normalize(torch.randn(n_docs * length, dim, generator=g), dim=1),
        token_ids=torch.zeros(n_docs * length, dtype=torch.long),
        offsets=offsets_from_lengths(torch.full((n_docs,), length)),
        vocab=("tok",),
    )


class ShareIndex(Index):
    """Exact MaxSim over the first share of the documents (a kind defined by a test)."""

    KIND, TYPE, STAGES = "share_test", "tests.share_test", ("scoring",)
    SEARCH_PARAMS = {"share": Param("share", float, 1.0, "Share of the documents scored.", low=0.0, high=1.0)}
    BUILD_PARAMS = {
        "tag": Param("tag", str, "", "A label (unused): a build knob of its own for the CLI to offer.")
    }

    def __init__(self, docs: Encoding, encoder=None, model=None):
        super().__init__(docs.ids, encoder=encoder, model=model)
        self.flat = FlatIndex(docs)

    @property
    def dim(self) -> int:
        return self.flat.dim

    def documents(self, positions=None) -> Encoding:
        return self.flat.documents(positions)

    def to(self, device):
        return self

    @classmethod
    def from_encoding(cls, docs, *, encoder=None, model=None, device=None, progress=False, **build):
        cls.resolve_build_knobs(build)
        return cls(docs, encoder=encoder, model=model)

    def save(self, path, overwrite: bool = False) -> None:
        from lirlab.storage import ArtifactWriter

        docs = self.flat.documents()
        with ArtifactWriter(path, self.TYPE, self.FORMAT_VERSION, overwrite=overwrite) as w:
            w.save_array("vectors", docs.vectors.numpy())
            w.save_array("offsets", docs.offsets.numpy())
            w.save_json("docnos", list(self.docnos))
            w.metadata.update(model=self.model)

    @classmethod
    def load(cls, path, encoder=None, device=None, verify: bool = True):
        from lirlab.storage import read_artifact

        art = read_artifact(path, cls.TYPE, cls.FORMAT_VERSION, verify=verify)
        offsets = torch.from_numpy(art.array("offsets").copy())
        vectors = torch.from_numpy(art.array("vectors").copy())
        docs = Encoding(
            ids=tuple(art.strings("docnos")),
            vectors=vectors,
            token_ids=torch.zeros(vectors.shape[0], dtype=torch.long),
            offsets=offsets,
            vocab=("tok",),
        )
        return cls(docs, encoder=encoder, model=art.table("model", required=False))

    def _search(self, queries, k, knobs, timer: StageTimer):
        keep = max(1, round(knobs["share"] * len(self)))
        hits = self.flat.search_encoded(queries, k=min(k, len(self)), subset=set(self.docnos[:keep]))
        timer.start()
        timer.lap("scoring")
        return hits


@pytest.fixture
def share_kind():
    """:class:`ShareIndex` registered for one test."""
    registry.register_kind(ShareIndex)
    yield ShareIndex
    registry.unregister_kind(ShareIndex.KIND)


def test_listing_kinds_knobs_and_tables_imports_no_torch():
    probe = (
        "import sys\n"
        "from lirlab.index import registry\n"
        "for name in registry.kind_names():\n"
        "    registry.search_params(name), registry.build_params(name)\n"
        "    registry.knob_table(name, 'search'), registry.knob_table(name, 'build')\n"
        "print(','.join(registry.kind_names()), 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [",".join(BUILT_IN), "False"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_kind_class_carries_the_registry_s_declarations(name):
    cls = registry.kind_class(name)
    entry = registry.kind(name)
    assert cls.KIND == name and registry.kind_class(entry.type) is cls and entry.summary
    # one declaration per knob: the class holds the very objects the torch-free module declares
    assert cls.SEARCH_PARAMS is registry.search_params(name)
    assert cls.BUILD_PARAMS is registry.build_params(name)


def test_the_import_by_name_shim_is_gone():
    assert not (Path(registry.__file__).parent / "bm25_rerank.py").exists()
    with pytest.raises(ValueError, match="unknown index kind 'codec'; known: bm25, "):
        registry.kind_class("codec")  # a module of lirlab/index, not a kind


def test_a_plaid_folder_lirlab_saved_is_never_taken_for_a_fast_plaid_one(tmp_path):
    docs = random_docs()
    plaid = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=16)
    folder = tmp_path / "plaid"
    plaid.save(folder)
    assert (folder / "centroids.npy").is_file() and (folder / "bucket_weights.npy").is_file()
    assert registry.format_names() and registry.formats()[-1].recognise(folder)  # the files alone would
    assert registry.identify(folder) is registry.kind("plaid")
    loaded = load_index(folder)
    assert type(loaded) is PlaidIndex
    queries = docs.select([3, 17])
    assert loaded.search(queries, k=5).docno.tolist() == plaid.search(queries, k=5).docno.tolist()


def test_warp_saves_and_reloads_as_warp(tmp_path):
    docs = random_docs(seed=1)
    warp = WarpIndex.from_encoding(docs, nbits=2, n_centroids=16)
    folder = tmp_path / "warp"
    warp.save(folder)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["type"] == "lirlab.warp" and meta["describe"]["kind"] == "warp"
    loaded = load_index(folder)
    assert type(loaded) is WarpIndex
    queries = docs.select([5, 9, 30])
    before, after = warp.search(queries, k=5, nprobe=4), loaded.search(queries, k=5, nprobe=4)
    assert after.docno.tolist() == before.docno.tolist()
    torch.testing.assert_close(torch.tensor(after.score.values), torch.tensor(before.score.values))
    with pytest.raises(ArtifactError, match="lirlab.warp"):
        PlaidIndex.load(folder)  # a WARP folder is WARP's, not a PLAID one


def test_foreign_folders_open_through_load_index(tmp_path):
    fast = tmp_path / "fast-plaid"
    shutil.copytree(FIXTURES / "fast_plaid" / "index", fast)
    assert registry.identify(fast).name == "fast-plaid"
    index = load_index(fast)
    assert type(index) is PlaidIndex and len(index) == 40
    colbert = tmp_path / "colbert-ai"
    shutil.copytree(FIXTURES / "colbert_ai" / "nbits2", colbert)
    assert registry.identify(colbert).name == "colbert-ai"
    assert type(load_index(colbert)) is PlaidIndex


def test_a_folder_that_is_no_index_is_refused_in_one_line(tmp_path):
    other = tmp_path / "negatives"
    other.mkdir()
    (other / "metadata.json").write_text(json.dumps({"type": "lirlab.negatives"}))
    with pytest.raises(ArtifactError, match="records type 'lirlab.negatives', which is no index kind"):
        load_index(other)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "centroids.npy").write_bytes(b"")  # half a fast-plaid folder
    with pytest.raises(ArtifactError, match="not a lirlab index folder"):
        load_index(plain)
    damaged = tmp_path / "damaged"
    shutil.copytree(FIXTURES / "fast_plaid" / "index", damaged)
    (damaged / "metadata.json").write_text("{ not json")  # unreadable: never guessed to be foreign
    with pytest.raises(ArtifactError, match="not a readable lirlab metadata file"):
        load_index(damaged)


def test_a_kind_defined_in_a_test_is_registered_listed_built_and_loaded(share_kind, tmp_path):
    assert "share_test" in registry.kind_names()
    assert registry.kind_class("tests.share_test") is share_kind
    assert list(registry.search_params("share_test")) == ["share"]
    docs = random_docs(n_docs=12, length=4)
    index = share_kind.from_encoding(docs)
    index.save(tmp_path / "share")
    loaded = load_index(tmp_path / "share")
    assert type(loaded) is share_kind
    run = loaded.search(docs.select([2]), k=3, share=0.5)
    assert run.docno.tolist()[0] == "d2" and set(run.docno) <= {f"d{i}" for i in range(6)}
    assert "`share`" in registry.knob_table("share_test")


def test_registering_refuses_what_is_not_a_kind():
    with pytest.raises(ValueError, match="subclass of lirlab.index.base.Index"):
        registry.register_kind(dict)
    with pytest.raises(ValueError, match="name=, artifact_type= and knobs="):
        registry.register_kind("somewhere:Thing", name="thing")
    with pytest.raises(ValueError, match="already the plaid kind's"):
        registry.register_kind(
            "somewhere:Thing", name="thing", artifact_type="lirlab.plaid", knobs="somewhere"
        )
    assert "thing" not in registry.kind_names()


def test_negatives_are_mined_with_any_registered_kind(tmp_path):
    from lirlab.data import Document
    from lirlab.encoder import ColBERT
    from lirlab.index.bm25 import BM25Index
    from lirlab.train import TrainingData, mine_negatives

    from .test_train import DOCS, PAIRS, QUERIES, tiny_folder

    encoder = ColBERT.load(tiny_folder(tmp_path / "tiny"), device="cpu")
    data = TrainingData.from_pairs(QUERIES, DOCS, PAIRS, name="tiny")
    mined = mine_negatives(encoder, data, depth=2, kind="bm25", progress=False)
    assert mined.meta["kind"] == "bm25"
    reference = BM25Index.build([Document(d, t) for d, t in DOCS.items()])  # BM25 ranks, by itself
    for qid, text in QUERIES.items():
        ranked = reference.search([text], k=len(DOCS)).docno.tolist()
        expected = [d for d in ranked if d not in data.positives[qid]][:2]
        assert list(mined.for_query(qid)) == expected
    with pytest.raises(ValueError, match="one of bm25, bm25_rerank, flat"):
        mine_negatives(encoder, data, kind="exact")


@pytest.mark.parametrize("bad", [None, 3, b"index"])
def test_a_path_that_is_no_path_is_one_line_from_load_index(bad):
    with pytest.raises(ValueError, match="index path") as caught:
        load_index(bad)
    assert "\n" not in str(caught.value)
