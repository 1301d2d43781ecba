"""A saved Qdrant index is tied to its shard: damage, swaps, symlinks and paths out of the folder are
refused in one line; several readers open one index at once, each seeing one whole save; ``overwrite``
means what it means for every other kind; a killed save leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from lirlab.storage import ArtifactError, ReplacedFolderWarning, metadata_checksum

from .synthetic import random_encoding

pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed (pip install 'lirlab[qdrant]')")

from lirlab.index import qdrant as qdrant_module  # noqa: E402
from lirlab.index.qdrant import QdrantIndex  # noqa: E402

N_DOCS, DIM = 30, 16
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def docs():
    return random_encoding(N_DOCS, seed=11, dim=DIM, vocab_size=5)


@pytest.fixture(scope="module")
def queries():
    return random_encoding(4, seed=12, dim=DIM, kind="query", prefix="q")


@pytest.fixture(scope="module")
def index(docs):
    built = QdrantIndex.from_encoding(docs)
    yield built
    built.close()


@pytest.fixture(scope="module")
def reversed_index(docs):
    """The same documents in the opposite order: a shard of the same sizes whose positions name other docnos."""
    built = QdrantIndex.from_encoding(docs.select(list(range(N_DOCS))[::-1]))
    yield built
    built.close()


def named_hits(index, queries) -> list[list[tuple[str, float]]]:
    return [
        [(index.docnos[p], round(s, 4)) for p, s in zip(pos.tolist(), scores.tolist())]
        for pos, scores in index.search_encoded(queries, k=5, exact=True)
    ]


def one_line_error(path, verify=True) -> str:
    with pytest.raises(ArtifactError) as caught:
        QdrantIndex.load(path, verify=verify).close()
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def shard_files(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "qdrant").rglob("*") if p.is_file())


def largest_shard_file(folder: Path, pattern: str) -> Path:
    return max((p for p in shard_files(folder) if p.match(pattern)), key=lambda p: p.stat().st_blocks)


def edit_metadata(folder: Path, change) -> None:
    """Change metadata.json as someone would by hand, recomputing its checksum so only our checks stand."""
    meta = json.loads((folder / "metadata.json").read_text())
    change(meta)
    meta["checksum"] = metadata_checksum(meta)
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2))


# ------------------------------------------------------------------ the shard belongs to its metadata


def test_a_shard_copied_in_from_another_index_is_refused(index, reversed_index, tmp_path):
    index.save(tmp_path / "a")
    reversed_index.save(tmp_path / "b")
    shutil.rmtree(tmp_path / "a" / "qdrant")
    shutil.copytree(tmp_path / "b" / "qdrant", tmp_path / "a" / "qdrant")
    assert "qdrant" in one_line_error(tmp_path / "a")
    assert "qdrant" in one_line_error(tmp_path / "a", verify=False)  # its files have other names


def test_a_symlinked_shard_is_refused(index, tmp_path):
    index.save(tmp_path / "a")
    index.save(tmp_path / "b")
    shutil.rmtree(tmp_path / "a" / "qdrant")
    (tmp_path / "a" / "qdrant").symlink_to(tmp_path / "b" / "qdrant")
    assert "symbolic link" in one_line_error(tmp_path / "a")


def test_a_symlinked_file_inside_the_shard_is_refused(index, tmp_path):
    index.save(tmp_path / "a")
    inner = largest_shard_file(tmp_path / "a", "*/vectors/chunk_*.mmap")
    outside = tmp_path / "outside.mmap"
    shutil.copyfile(inner, outside)
    inner.unlink()
    inner.symlink_to(outside)
    assert "symbolic link" in one_line_error(tmp_path / "a")


def test_two_same_size_damaged_shard_files_are_refused(index, queries, tmp_path):
    index.save(tmp_path / "a")
    for pattern in ("*/vectors/chunk_*.mmap", "*/payload_storage/page_*.dat"):
        damaged = largest_shard_file(tmp_path / "a", pattern)
        with open(damaged, "r+b") as f:
            f.seek(64)
            byte = f.read(1)
            f.seek(64)
            f.write(bytes([byte[0] ^ 0x5A]))
    assert "checksum mismatch" in one_line_error(tmp_path / "a")


def truncate(file: Path) -> None:
    with open(file, "r+b") as f:
        f.truncate(max(file.stat().st_size // 2, 1))


def garble(file: Path) -> None:
    file.write_bytes(b"[" + file.read_bytes()[1:])


@pytest.mark.parametrize(
    ("damage", "pattern", "expected"),
    [
        (Path.unlink, "*/segment.json", "missing"),
        (truncate, "*/vectors/chunk_*.mmap", "bytes, expected"),
        (garble, "edge_config.json", "checksum mismatch"),
    ],
    ids=["deleted", "truncated", "garbled"],
)
def test_other_shard_damage_is_one_lirlab_error(index, tmp_path, damage, pattern, expected):
    index.save(tmp_path / "a")
    damage(largest_shard_file(tmp_path / "a", pattern))
    assert expected in one_line_error(tmp_path / "a")


def test_a_file_added_to_the_shard_is_refused(index, tmp_path):
    index.save(tmp_path / "a")
    segment = next((tmp_path / "a" / "qdrant" / "segments").iterdir())
    (segment / "extra.bin").write_bytes(b"not the engine's")
    assert "extra.bin" in one_line_error(tmp_path / "a", verify=False)


def test_loading_never_changes_the_saved_shard(index, queries, tmp_path):
    """Checksums taken at save time must still hold after the engine has opened the index several times."""
    index.save(tmp_path / "a")
    before = {p: p.read_bytes() for p in shard_files(tmp_path / "a")}
    for _ in range(2):
        loaded = QdrantIndex.load(tmp_path / "a")
        loaded.search_encoded(queries, k=3)
        loaded.close()
    assert {p: p.read_bytes() for p in shard_files(tmp_path / "a")} == before


# ------------------------------------------------------------------ paths from metadata stay inside


def test_a_shard_folder_outside_the_index_is_refused_before_anything_is_created(index, tmp_path):
    index.save(tmp_path / "deep" / "a")
    edit_metadata(tmp_path / "deep" / "a", lambda m: m["config"].update(folder="../../somewhere"))
    assert "config.folder" in one_line_error(tmp_path / "deep" / "a")
    assert not (tmp_path / "somewhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]


def test_another_indexs_shard_named_by_the_metadata_is_refused(index, reversed_index, tmp_path):
    index.save(tmp_path / "a")
    reversed_index.save(tmp_path / "b")
    edit_metadata(tmp_path / "a", lambda m: m["config"].update(folder="../b/qdrant"))
    assert "config.folder" in one_line_error(tmp_path / "a")
    edit_metadata(tmp_path / "a", lambda m: m["config"].update(folder=str(tmp_path / "b" / "qdrant")))
    assert "config.folder" in one_line_error(tmp_path / "a")


# ------------------------------------------------------------------ readers


def test_two_readers_in_one_process_open_one_index(index, queries, tmp_path):
    index.save(tmp_path / "a")
    first = QdrantIndex.load(tmp_path / "a")
    second = QdrantIndex.load(tmp_path / "a")
    try:
        assert named_hits(first, queries) == named_hits(second, queries) == named_hits(index, queries)
    finally:
        first.close()
        second.close()


READER = """
import sys, os
from lirlab.index.qdrant import QdrantIndex
from tests.synthetic import random_encoding
queries = random_encoding(4, seed=12, dim=16, kind="query", prefix="q")
index = QdrantIndex.load(sys.argv[1])
print(index.backend.folder)
for pos, _ in index.search_encoded(queries, k=5, exact=True):
    print(" ".join(index.docnos[p] for p in pos.tolist()))
sys.stdout.flush()
if sys.argv[2] == "die":
    os._exit(0)  # like kill -9: no finalizer runs
index.close()
"""


def run_reader(folder: Path, how: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", READER, str(folder), how],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_another_process_opens_an_index_this_one_holds_open(index, queries, tmp_path):
    index.save(tmp_path / "a")
    mine = QdrantIndex.load(tmp_path / "a")
    try:
        lines = run_reader(tmp_path / "a", "close")
        expected = [" ".join(d for d, _ in hits) for hits in named_hits(mine, queries)]
        assert lines[1:] == expected
        assert not Path(lines[0]).exists()  # the reader's private copy went with close()
    finally:
        mine.close()


def test_a_dead_readers_private_copy_is_removed_by_the_next_load(index, tmp_path):
    index.save(tmp_path / "a")
    left = Path(run_reader(tmp_path / "a", "die")[0]).parent
    assert left.exists()
    young = QdrantIndex.load(tmp_path / "a")  # a folder made a moment ago may not be locked yet: kept
    assert left.exists()
    long_ago = time.time() - 2 * qdrant_module.DEAD_PRIVATE_AGE_S
    os.utime(left, (long_ago, long_ago))
    QdrantIndex.load(tmp_path / "a").close()
    assert not left.exists()
    assert young.backend.folder.exists()  # a live reader's copy, however old, stays
    os.utime(young.backend.folder.parent, (long_ago, long_ago))
    QdrantIndex.load(tmp_path / "a").close()
    assert young.backend.folder.exists()
    young.close()
    assert not young.backend.folder.exists()


FORKED = """
import os, sys
from lirlab.index.qdrant import QdrantIndex
from tests.synthetic import random_encoding
queries = random_encoding(4, seed=12, dim=16, kind="query", prefix="q")
index = QdrantIndex.load(sys.argv[1])
before = [p.tolist() for p, _ in index.search_encoded(queries, k=5, exact=True)]
child = os.fork()
if child == 0:
    sys.exit(0)  # a normal exit runs the finalizers the child inherited
os.waitpid(child, 0)
assert index.backend.folder.is_dir(), "the child removed its parent's private copy"
assert [p.tolist() for p, _ in index.search_encoded(queries, k=5, exact=True)] == before
index.close()
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_forked_child_leaves_its_parents_private_copy(index, tmp_path):
    index.save(tmp_path / "a")
    done = subprocess.run(
        [sys.executable, "-c", FORKED, str(tmp_path / "a")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_save_committing_during_a_load_gives_the_old_or_the_new_index(
    index, reversed_index, queries, tmp_path, monkeypatch
):
    """The race the audit found: metadata and docnos read, then a save swaps the folder, then the shard
    is opened. The load must pair docnos and shard from one save (here it retries and gets the new one)."""
    folder = tmp_path / "a"
    index.save(folder)
    real_read = qdrant_module.read_artifact
    calls = []

    def read_then_replace(*args, **kwargs):
        art = real_read(*args, **kwargs)
        if not calls:
            reversed_index.save(folder)  # commits between the metadata and the shard
        calls.append(1)
        return art

    monkeypatch.setattr(qdrant_module, "read_artifact", read_then_replace)
    loaded = QdrantIndex.load(folder)
    try:
        assert named_hits(loaded, queries) == named_hits(reversed_index, queries)
        assert loaded.docnos == reversed_index.docnos
    finally:
        loaded.close()


# ------------------------------------------------------------------ overwrite means one thing


def test_saving_over_its_own_index_needs_no_overwrite(index, queries, tmp_path):
    index.save(tmp_path / "a")
    index.save(tmp_path / "a")  # as FlatIndex.save: an artifact of ours is always replaced
    loaded = QdrantIndex.load(tmp_path / "a")
    try:
        assert named_hits(loaded, queries) == named_hits(index, queries)
        # the index opened from a folder can be saved back over it (it reads a private copy)
        loaded.save(tmp_path / "a")
    finally:
        loaded.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_a_users_folder_is_refused_and_kept_without_overwrite(index, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a lirlab artifact .*'notes.txt'.*overwrite=True"):
        index.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_a_users_folder_moving_its_files_aside(index, queries, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.warns(ReplacedFolderWarning):
        index.save(tmp_path / "mine", overwrite=True)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("mine.replaced-")]
    assert len(kept) == 1 and (kept[0] / "notes.txt").read_text() == "keep me"
    loaded = QdrantIndex.load(tmp_path / "mine")
    try:
        assert named_hits(loaded, queries) == named_hits(index, queries)
    finally:
        loaded.close()


# ------------------------------------------------------------------ killed saves


KILLED_SAVE = """
import os, signal, sys
from lirlab.index import qdrant
from tests.synthetic import random_encoding
index = qdrant.QdrantIndex.from_encoding(random_encoding(30, seed=11, dim=16, vocab_size=5))
real_copy = qdrant._copy_file
copied = []
def copy_then_die(*args, **kwargs):
    copied.append(1)
    if len(copied) == 6:  # some of the shard written, as a kill -9 in the middle of a save
        os.kill(os.getpid(), signal.SIGKILL)
    return real_copy(*args, **kwargs)
qdrant._copy_file = copy_then_die
index.save(sys.argv[1])
"""


def test_a_killed_saves_staging_folder_is_removed_by_the_next_save(index, queries, tmp_path):
    folder = tmp_path / "a"
    index.save(folder)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_SAVE, str(folder)], cwd=REPO, capture_output=True, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".a.writing-")]
    assert len(left) == 1 and (left[0] / "qdrant").is_dir()  # a staging folder with a sub-folder
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    loaded = QdrantIndex.load(folder)
    try:
        assert named_hits(loaded, queries) == named_hits(index, queries)
    finally:
        loaded.close()


@pytest.mark.parametrize("bad", [None, 3, b"index"])
def test_a_path_that_is_no_path_is_one_line_from_qdrant_load_and_save(bad):
    from lirlab.index.qdrant import QdrantIndex

    with pytest.raises(ValueError, match="path") as caught:
        QdrantIndex.load(bad)
    assert "\n" not in str(caught.value)


def test_a_look_alike_of_a_private_copy_that_lirlab_did_not_make_is_kept(index, tmp_path):
    """Only a folder made as lirlab makes its private copies (its name, this user's, closed to others) is
    ever removed; one a person made with such a name, readable by others, stays with what it holds."""
    index.save(tmp_path / "a")
    look_alike = Path(tempfile.gettempdir()) / f"{qdrant_module.PRIVATE_PREFIX}1-{'ab' * 6}"
    look_alike.mkdir(mode=0o755)
    try:
        look_alike.chmod(0o755)
        (look_alike / "notes.txt").write_text("mine")
        long_ago = time.time() - 2 * qdrant_module.DEAD_PRIVATE_AGE_S
        os.utime(look_alike, (long_ago, long_ago))
        QdrantIndex.load(tmp_path / "a").close()
        assert (look_alike / "notes.txt").read_text() == "mine"
    finally:
        shutil.rmtree(look_alike, ignore_errors=True)
