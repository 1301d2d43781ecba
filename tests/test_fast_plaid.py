"""Reading an index that fast-plaid itself built (tests/fixtures/fast_plaid, see make_fixture.py there).

The fixture holds fast-plaid's own top-10 for the 30 demo queries, searched with the query vectors
stored beside it; lirlab's PLAID search over the same folder must return the same documents in the
same order with the same scores (fast-plaid scores in half precision, hence the tolerance).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.fast_plaid import is_fast_plaid_index, read_fast_plaid_index
from lirlab.storage import ArtifactError

FIXTURE = Path(__file__).parent / "fixtures" / "fast_plaid"
TOP = json.loads((FIXTURE / "topk.json").read_text())
SCORE_TOLERANCE = 0.01  # fast-plaid decompresses and scores in float16


def stored_queries() -> Encoding:
    q = load_file(str(FIXTURE / "queries.safetensors"))["Q"]
    n, length, dim = q.shape
    return Encoding(
        ids=tuple(TOP["top10"]["default"]),
        vectors=q.reshape(-1, dim),
        token_ids=torch.zeros(n * length, dtype=torch.long),
        offsets=offsets_from_lengths(torch.full((n,), length)),
        vocab=("t",),
        kind="query",
    )


@pytest.fixture
def folder(tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(FIXTURE / "index", copy)
    return copy


def test_the_fixture_is_what_fast_plaid_writes():
    assert is_fast_plaid_index(FIXTURE / "index")
    assert not (FIXTURE / "index" / "0.codes.npy").exists()  # single-copy layout: merged files only
    meta = json.loads((FIXTURE / "index" / "metadata.json").read_text())
    assert meta["nbits"] == TOP["nbits"] == 2 and meta["num_documents"] == 40
    assert np.load(FIXTURE / "index" / "merged_codes.npy").shape[0] > meta["num_embeddings"]  # padded


@pytest.mark.parametrize("setting", ["default", "exhaustive"])
def test_search_gives_fast_plaid_s_own_top10(setting):
    index = read_fast_plaid_index(FIXTURE / "index")
    assert len(index) == 40 and index.codec.n_centroids == TOP["n_centroids"]
    knobs = TOP["settings"][setting]
    # fast-plaid's n_ivf_probe is lirlab's n_probe; n_full_scores (4096, more than the 40 documents)
    # decompresses every candidate, so nothing may be pruned before the exact stage here either
    run = index.search(
        stored_queries(),
        k=10,
        n_probe=knobs["n_ivf_probe"],
        ndocs=4 * knobs["n_full_scores"],
        centroid_score_threshold=-1.0,
    )
    expected = TOP["top10"][setting]
    assert sorted(run.qid.unique()) == sorted(expected)
    for qid, group in run.groupby("qid"):
        assert [int(d) for d in group.docno] == expected[qid]["pids"], qid
        np.testing.assert_allclose(group.score, expected[qid]["scores"], atol=SCORE_TOLERANCE, rtol=0)


def test_docnos_name_fast_plaid_s_document_ids():
    names = [f"doc{i}" for i in range(40)]
    index = read_fast_plaid_index(FIXTURE / "index", docnos=names)
    run = index.search(stored_queries().select([0]), k=3)
    q01 = TOP["top10"]["default"]["q01"]["pids"][:3]
    assert run.docno.tolist() == [f"doc{p}" for p in q01]
    with pytest.raises(ValueError, match="3 docnos given for 40 documents"):
        read_fast_plaid_index(FIXTURE / "index", docnos=["a", "b", "c"])


def _stage_chunk(folder: Path) -> None:
    np.save(folder / "0.codes.npy", np.zeros(3, dtype=np.int64))
    manifest = folder / "merged_codes.manifest.json"
    manifest.write_text(json.dumps({"0.codes.npy": {"rows": 3, "merged": False, "mtime": 1.0}}))


def _pickled_centroids(folder: Path) -> None:
    np.save(folder / "centroids.npy", np.array([{"code": "x"}], dtype=object), allow_pickle=True)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "bucket_weights.npy").unlink(), "bucket_weights.npy: missing"),
        (_pickled_centroids, "centroids.npy: holds Python objects.*will not unpickle"),
        (
            lambda f: (f / "merged_residuals.npy").write_bytes(b"\x93NUMPY garbage"),
            "merged_residuals.npy: cannot be read",
        ),
        (
            lambda f: np.save(f / "merged_codes.npy", np.zeros(10, dtype=np.int64)),
            "10 rows for 2110 token vectors",
        ),
        (
            lambda f: np.save(f / "ivf_lengths.npy", np.zeros(7, dtype=np.int32)),
            "7 list lengths for 512 centroids",
        ),
        (lambda f: np.save(f / "ivf.npy", np.zeros(5, dtype=np.int64)), "the file holds 5"),
        (_stage_chunk, "has not merged yet"),
        (lambda f: (f / "metadata.json").write_text("{}"), "lacks nbits or num_chunks"),
        (lambda f: (f / "doclens.0.json").write_text('["x"]'), "expected a list of document lengths"),
    ],
)
def test_damaged_or_unfinished_folders_are_named(folder, damage, message):
    damage(folder)
    with pytest.raises(ArtifactError, match=message):
        read_fast_plaid_index(folder)


def test_raw_vector_files_are_not_needed(folder):
    (folder / "cluster_threshold.npy").unlink()
    (folder / "avg_residual.npy").unlink()
    np.save(folder / "buffer.npy", np.zeros((2, 128), dtype=np.float32))  # update's raw vectors
    kept = read_fast_plaid_index(folder)
    torch.testing.assert_close(
        kept.documents().vectors, read_fast_plaid_index(FIXTURE / "index").documents().vectors
    )
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, "compress_only": True}))
    with pytest.raises(ArtifactError, match="compress_only"):
        read_fast_plaid_index(folder)


def test_per_chunk_files_are_read_when_there_is_no_merged_file(folder):
    meta = json.loads((folder / "metadata.json").read_text())
    total = meta["num_embeddings"]
    for suffix in ("codes", "residuals"):
        rows = np.load(folder / f"merged_{suffix}.npy")[:total]
        np.save(folder / f"0.{suffix}.npy", rows)
        (folder / f"merged_{suffix}.npy").unlink()
        (folder / f"merged_{suffix}.manifest.json").unlink()
    chunked = read_fast_plaid_index(folder)
    merged = read_fast_plaid_index(FIXTURE / "index")
    torch.testing.assert_close(chunked.documents().vectors, merged.documents().vectors)


@pytest.mark.parametrize(
    "name", ["merged_codes.npy", "centroids.npy", "metadata.json", "doclens.0.json", "ivf.npy"]
)
def test_a_file_linked_from_outside_the_folder_is_refused(folder, tmp_path, name):
    """As lirlab's own reader: only plain files inside the folder, never a link to a file elsewhere."""
    outside = tmp_path / f"outside-{name}"
    (folder / name).rename(outside)
    (folder / name).symlink_to(outside)
    with pytest.raises(ArtifactError, match=f"{name}: is a symbolic link") as error:
        read_fast_plaid_index(folder)
    assert "\n" not in str(error.value)


def test_a_linked_index_folder_is_read(folder, tmp_path):
    (tmp_path / "link").symlink_to(folder)
    assert len(read_fast_plaid_index(tmp_path / "link")) == 40


@pytest.mark.parametrize("path", [None, 5, b"index", "index\x00"], ids=["none", "int", "bytes", "nul"])
def test_a_path_that_cannot_be_one_is_one_clear_line(path):
    with pytest.raises(ValueError, match="index path") as error:
        read_fast_plaid_index(path)
    assert "\n" not in str(error.value)
