"""What a reader may trust and what a writer may delete: the metadata's self-check cannot be switched
off, files a user added to an index folder are never deleted, a second writer is refused in one line,
leftover staging folders with sub-folders are cleaned, and bad paths are named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lirlab import storage
from lirlab.storage import (
    ArtifactError,
    ArtifactWriter,
    ReplacedFolderWarning,
    clean_leftovers,
    read_artifact,
)

from .test_storage_durability import TYPE, edit_metadata, posix_only, read_value, siblings, write

# ---------------------------------------------------------------- a checksum that cannot be switched off


def swap_array_and_entry(folder: Path) -> None:
    """Replace a.npy by another save's, and its files entry to match: only the self-check can tell."""
    other = folder.parent / "other"
    write(other, 9)
    (folder / "a.npy").write_bytes((other / "a.npy").read_bytes())
    edit_metadata(folder, lambda m: m["files"].update({"a.npy": m2_entry(other)}))


def m2_entry(other: Path) -> dict:
    return json.loads((other / "metadata.json").read_text())["files"]["a.npy"]


@pytest.mark.parametrize(
    "drop_checksum",
    [
        lambda m: m.pop("checksum"),
        lambda m: m.update({"chucksum": m.pop("checksum")}),  # one bit of its name flipped (e^u)
        lambda m: m.update(checksum=None),
    ],
    ids=["deleted", "name-bit-flipped", "null"],
)
@pytest.mark.parametrize("verify", [True, False])
def test_metadata_without_its_checksum_is_refused(tmp_path, drop_checksum, verify):
    folder = tmp_path / "idx"
    write(folder, 1)
    swap_array_and_entry(folder)
    edit_metadata(folder, drop_checksum)
    with pytest.raises(ArtifactError, match="carries no checksum of itself.*save the index again") as error:
        read_artifact(folder, TYPE, 1, verify=verify)
    assert "before 2 December 2026" in str(error.value)  # what an older lirlab's folder is told
    assert "\n" not in str(error.value)


def test_a_checksum_that_is_not_a_digest_is_refused(tmp_path):
    write(tmp_path / "idx", 1)
    edit_metadata(tmp_path / "idx", lambda m: m.update(checksum=12))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        read_artifact(tmp_path / "idx", TYPE, 1)


def test_an_interrupted_swap_without_checksums_is_not_rolled_forward(tmp_path):
    """A staging folder whose metadata lacks its checksum is not taken for a complete save."""
    target = tmp_path / "idx"
    write(target, 1)
    write(tmp_path / "new", 2)
    edit_metadata(tmp_path / "new", lambda m: m.pop("checksum"))
    os.rename(target, tmp_path / ".idx.retired-4242-deadbeef")
    os.rename(tmp_path / "new", tmp_path / ".idx.writing-4242-0badc0de")
    assert read_value(target) == 1  # the previous, checked artifact comes back


# ---------------------------------------------------------------- a user's files inside an index folder


def test_resaving_over_an_index_holding_a_users_file_refuses_and_keeps_everything(tmp_path):
    folder = tmp_path / "idx"
    write(folder, 1)
    (folder / "NOTES.md").write_text("what I learned")
    with pytest.raises(ArtifactError, match=r"also holds 1 entry lirlab did not write \('NOTES.md'\)") as e:
        write(folder, 2)
    assert "overwrite=True" in str(e.value) and "\n" not in str(e.value)
    assert (folder / "NOTES.md").read_text() == "what I learned" and read_value(folder) == 1
    assert siblings(folder) == ["idx"]


def test_overwrite_moves_an_index_with_a_users_file_aside_whole(tmp_path):
    folder = tmp_path / "idx"
    write(folder, 1)
    (folder / "NOTES.md").write_text("what I learned")
    with pytest.warns(ReplacedFolderWarning, match="moved to"):
        write(folder, 2, overwrite=True)
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("idx.replaced-")]
    assert (kept / "NOTES.md").read_text() == "what I learned" and read_value(kept) == 1
    assert read_value(folder) == 2 and not (folder / "NOTES.md").exists()


def test_a_users_file_added_between_the_check_and_the_swap_is_not_deleted(tmp_path, monkeypatch):
    folder = tmp_path / "idx"
    write(folder, 1)
    real_swap = storage._swap

    def swap(src, dst):
        (dst / "NOTES.md").write_text("written during the save")
        return real_swap(src, dst)

    monkeypatch.setattr(storage, "_swap", swap)
    with pytest.warns(ReplacedFolderWarning, match="moved to"):
        write(folder, 2)
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("idx.replaced-")]
    assert (kept / "NOTES.md").read_text() == "written during the save" and read_value(folder) == 2


# ---------------------------------------------------------------- sub-folders


def write_with_subfolder(path: Path, value: int, **kwargs) -> None:
    with ArtifactWriter(path, TYPE, 1, **kwargs) as w:
        w.save_array("a", np.full(4, value))
        shard = w.staging / "shard" / "segments"  # what an engine writes by itself (e.g. Qdrant)
        shard.mkdir(parents=True)
        (shard / "data.bin").write_bytes(bytes([value]) * 100)
        (w.staging / "config.json").write_text(json.dumps({"value": value}))  # written by other code
        w.metadata["config"] = {"value": value}


def test_what_other_code_writes_into_the_staging_folder_is_listed_and_replaced_cleanly(tmp_path):
    folder = tmp_path / "idx"
    write_with_subfolder(folder, 1)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["folders"] == ["shard"] and "config.json" in meta["files"]
    art = read_artifact(folder, TYPE, 1)
    assert art.folder("shard") == folder / "shard" and art.json("config") == {"value": 1}
    with pytest.raises(ArtifactError, match="does not list"):
        art.folder("other")
    write_with_subfolder(folder, 2)  # no user's files: replaced without overwrite=True
    assert (folder / "shard" / "segments" / "data.bin").read_bytes() == bytes([2]) * 100
    assert siblings(folder) == ["idx"]


def test_a_listed_folder_that_is_missing_or_a_link_is_refused(tmp_path):
    folder = tmp_path / "idx"
    write_with_subfolder(folder, 1)
    os.rename(folder / "shard", tmp_path / "elsewhere")
    with pytest.raises(ArtifactError, match="shard: missing"):
        read_artifact(folder, TYPE, 1, verify=False)
    (folder / "shard").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ArtifactError, match="shard: is a symbolic link"):
        read_artifact(folder, TYPE, 1, verify=False)
    edit_metadata(folder, lambda m: m.update(folders=["../elsewhere"]), rechecksum=True)
    with pytest.raises(ArtifactError, match="not a plain folder name"):
        read_artifact(folder, TYPE, 1, verify=False)


def test_a_symlink_left_in_the_staging_folder_is_refused_at_commit(tmp_path):
    with pytest.raises(ArtifactError, match="link.*symbolic link"):
        with ArtifactWriter(tmp_path / "idx", TYPE, 1) as w:
            (w.staging / "link").symlink_to(tmp_path)
    assert siblings(tmp_path / "idx") == []


@posix_only
def test_a_killed_writers_staging_folder_with_sub_folders_is_cleaned(tmp_path):
    folder = tmp_path / "idx"
    write(folder, 1)
    staging = run_child_until_killed(
        f"""
        w = ArtifactWriter({str(folder)!r}, {TYPE!r}, 1).__enter__()
        (w.staging / "shard" / "segments").mkdir(parents=True)
        (w.staging / "shard" / "segments" / "data.bin").write_bytes(b"x" * 1000)
        print(w.staging, flush=True)
        time.sleep(60)
        """
    )
    assert (Path(staging) / "shard").is_dir()
    assert read_value(folder) == 1 and siblings(folder) == ["idx"]


def test_a_look_alike_staging_folder_with_a_forged_or_missing_marker_is_kept(tmp_path):
    forged = tmp_path / ".idx.writing-123-0badc0de"
    (forged / "sub").mkdir(parents=True)
    (forged / storage.WRITER_MARKER).write_text(json.dumps({"writer": "another-name"}))
    unmarked = tmp_path / ".idx.retired-124-0badc0df"
    (unmarked / "sub").mkdir(parents=True)
    assert clean_leftovers(tmp_path / "idx") == []
    assert (forged / "sub").is_dir() and (unmarked / "sub").is_dir()


def test_a_writer_killed_while_writing_its_marker_leaves_a_folder_that_is_cleaned(tmp_path):
    staging = tmp_path / ".idx.writing-123-0badc0de"
    staging.mkdir()
    (staging / storage.WRITER_MARKER).write_bytes(b"")  # created, not yet written
    assert clean_leftovers(tmp_path / "idx") == [staging.name]


@posix_only
def test_a_killed_removal_of_an_old_artifact_with_sub_folders_is_finished_later(tmp_path):
    """The swapped-out artifact keeps its metadata until last, so a half-removed one is still ours."""
    folder = tmp_path / "idx"
    write_with_subfolder(folder, 2)
    write_with_subfolder(tmp_path / "old", 1)
    retired = tmp_path / ".idx.retired-4242-deadbeef"
    os.rename(tmp_path / "old", retired)
    (retired / "a.npy").unlink()  # as if the removal had been killed midway
    assert clean_leftovers(folder) == [retired.name] and siblings(folder) == ["idx"]


# ---------------------------------------------------------------- two writers


CHILD_PRELUDE = """
import sys, time
import numpy as np
from lirlab.storage import ArtifactWriter, ArtifactError
"""


def run_child_until_killed(body: str) -> str:
    """Run ``body`` in a child Python, return the first line it prints, then kill -9 it."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(body)], stdout=subprocess.PIPE, text=True
    )
    try:
        return child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait()


@posix_only
def test_a_second_writer_fails_in_one_line_while_the_first_is_saving(tmp_path):
    folder = tmp_path / "idx"
    write(folder, 1)
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD_PRELUDE
            + textwrap.dedent(
                f"""
                with ArtifactWriter({str(folder)!r}, {TYPE!r}, 1) as w:
                    w.save_array("a", np.full(50, 2, dtype=np.int64))
                    w.save_array("b", np.full((50, 3), 2, dtype=np.float32))
                    w.save_json("ids", [f"2-{{i}}" for i in range(50)])
                    w.metadata["config"] = {{"value": 2}}
                    print("saving", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().strip() == "saving"
        with pytest.raises(ArtifactError, match=rf"another process \(pid {first.pid}\) is saving") as error:
            write(folder, 3)
        assert "\n" not in str(error.value) and "wait" in str(error.value)
        assert read_value(folder) == 1
        first.stdin.write("go\n")
        first.stdin.flush()
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert read_value(folder) == 2 and siblings(folder) == ["idx"]
    write(folder, 4)  # the first writer is done: saving works again
    assert read_value(folder) == 4


@posix_only
def test_of_two_writers_starting_together_one_commits_whole_and_the_other_is_refused(tmp_path):
    """Rounds of racing starts: in each, at least one writer commits and any other fails in one line
    (a writer that lost the race and gave up must not make the winner give up too)."""
    folder = tmp_path / "idx"
    write(folder, 0)
    rounds, gap_s = 8, 0.4
    script = CHILD_PRELUDE + textwrap.dedent(
        f"""
        value, start = int(sys.argv[1]), float(sys.argv[2])
        for round_ in range({rounds}):
            while time.time() < start + round_ * {gap_s}:
                pass
            try:
                with ArtifactWriter({str(folder)!r}, {TYPE!r}, 1) as w:
                    w.save_array("a", np.full(50, value, dtype=np.int64))
                    w.save_array("b", np.full((50, 3), value, dtype=np.float32))
                    w.save_json("ids", [f"{{value}}-{{i}}" for i in range(50)])
                    w.metadata["config"] = {{"value": value}}
                print("saved", flush=True)
            except ArtifactError as e:
                print("refused", str(e).replace("\\n", "|"), flush=True)
        """
    )
    start = time.time() + 2.0
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(v), str(start)], stdout=subprocess.PIPE, text=True
        )
        for v in (1, 2)
    ]
    outputs = [c.communicate(timeout=120)[0].splitlines() for c in children]
    assert [c.returncode for c in children] == [0, 0]
    for round_, lines in enumerate(zip(*outputs)):
        assert any(line == "saved" for line in lines), (round_, lines)
        for line in lines:
            assert line == "saved" or ("another process" in line and "|" not in line), line
    assert read_value(folder) in (1, 2) and siblings(folder) == ["idx"]


# ---------------------------------------------------------------- bad paths


@pytest.mark.parametrize(
    "path, message",
    [
        (None, r"expected a path \(a str or pathlib.Path\), got NoneType"),
        (5, "got int 5"),
        (b"/tmp/idx", r"got bytes.*os.fsdecode"),
        ("idx\x00x", "NUL byte"),
        ("a" * 300, "300 bytes long"),
        ("a/" * 3000, "longer than the system allows"),
    ],
    ids=["none", "int", "bytes", "nul", "long-name", "long-path"],
)
@pytest.mark.parametrize(
    "call",
    [
        lambda p: write(p, 1),
        lambda p: read_artifact(p, TYPE, 1),
        storage.peek_type,
        storage.check_target,
        storage.read_metadata,
        clean_leftovers,
    ],
    ids=["save", "read", "peek_type", "check_target", "read_metadata", "clean_leftovers"],
)
def test_bad_paths_are_one_clear_line(tmp_path, monkeypatch, path, message, call):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message) as error:
        call(path)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_name_too_long_for_the_staging_folder_beside_it_is_refused_before_writing(tmp_path):
    name = "a" * 240  # a legal name, but the staging folder beside it would not be
    with pytest.raises(ValueError, match="240 bytes long.*at most 223"):
        write(tmp_path / name, 1)
    assert list(tmp_path.iterdir()) == []


@posix_only
@pytest.mark.parametrize(
    "began, refused",
    [(-1, True), ("soon", True), (None, True), (10**30, False)],
    ids=["earlier", "unreadable", "no-marker", "later"],
)
def test_a_live_writer_that_began_earlier_wins_and_one_that_began_later_yields(tmp_path, began, refused):
    """Of two writers each sees the other's marker: the one that began later fails (unknown = earlier)."""
    import fcntl

    folder = tmp_path / "idx"
    write(folder, 1)
    other = tmp_path / ".idx.writing-4242-0badc0de"
    other.mkdir()
    if began is not None:
        record = {"writer": other.name, "pid": 4242, "started_ns": began if began != -1 else 1}
        (other / storage.WRITER_MARKER).write_text(json.dumps(record))
    fd = os.open(other, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the live writer holds it
    try:
        if refused:
            with pytest.raises(ArtifactError, match=r"another process \(pid 4242\) is saving"):
                write(folder, 2)
            assert read_value(folder) == 1
        else:
            write(folder, 2)
            assert read_value(folder) == 2
    finally:
        os.close(fd)
    assert sorted(siblings(folder)) == sorted(["idx", other.name])
