"""Artifact folders: atomic replacement, crash leftovers, torn reads, tampered metadata, unsafe names.

The kill -9 and racing-reader trials at scale live in ``lirlab.bench.reliability`` (``-m reliability``);
here each state they can produce is built once, by hand or by one killed child process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lirlab import storage
from lirlab.storage import ArtifactError, ArtifactWriter, clean_leftovers, metadata_checksum, read_artifact

TYPE = "lirlab.test"
posix_only = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and flock"
)


def write(path, value: int, n: int = 50, **kwargs) -> None:
    """An artifact whose every file says which save wrote it."""
    with ArtifactWriter(path, TYPE, 1, **kwargs) as w:
        w.save_array("a", np.full(n, value, dtype=np.int64))
        w.save_array("b", np.full((n, 3), value, dtype=np.float32))
        w.save_json("ids", [f"{value}-{i}" for i in range(n)])
        w.metadata["config"] = {"value": value}


def read_value(path, verify: bool = True) -> int:
    """The save an artifact came from; fails if its files come from different saves."""
    art = read_artifact(path, TYPE, 1, verify=verify)
    values = {
        int(art.metadata["config"]["value"]),
        *np.unique(art.array("a")).tolist(),
        *np.unique(art.array("b")).astype(int).tolist(),
        *{int(s.split("-")[0]) for s in art.json("ids")},
    }
    assert len(values) == 1, f"files of different saves mixed: {values}"
    return values.pop()


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def edit_metadata(folder: Path, change, rechecksum: bool = False) -> None:
    meta = json.loads((folder / "metadata.json").read_text())
    change(meta)
    if rechecksum:
        meta["checksum"] = metadata_checksum(meta)
    (folder / "metadata.json").write_text(json.dumps(meta))


# ---------------------------------------------------------------- refusing to destroy other folders


def test_saving_onto_a_folder_of_other_files_refuses_and_keeps_them(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "data").mkdir()
    with pytest.raises(ArtifactError, match=r"holds 2 entries that is not a lirlab artifact.*overwrite=True"):
        write(folder, 1)
    assert sorted(p.name for p in folder.iterdir()) == ["data", "thesis.tex"]
    assert siblings(folder) == ["mine"]  # no staging folder left either
    write(folder, 2, overwrite=True)
    assert read_value(folder) == 2 and not (folder / "thesis.tex").exists()


def test_saving_into_an_empty_folder_or_over_our_own_artifact_needs_no_overwrite(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    write(folder, 1)
    write(folder, 2)
    assert read_value(folder) == 2 and siblings(folder) == ["empty"]


def test_saving_onto_a_file_refuses(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ArtifactError, match="exists and is not a folder"):
        write(tmp_path / "f", 1, overwrite=True)
    assert (tmp_path / "f").read_text() == "x"


def test_flat_index_save_refuses_a_foreign_folder(tmp_path):
    from lirlab.index.flat import FlatIndex

    from .test_maxsim import random_encoding

    (tmp_path / "notes.md").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a lirlab artifact"):
        FlatIndex(random_encoding([2, 3], dim=4)).save(tmp_path)
    assert (tmp_path / "notes.md").read_text() == "keep me"


def test_saving_through_a_symlink_replaces_the_target_not_the_link(tmp_path):
    write(tmp_path / "real", 1)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    write(tmp_path / "link", 2)
    assert (tmp_path / "link").is_symlink() and read_value(tmp_path / "real") == 2
    assert siblings(tmp_path / "real") == ["link", "real"]


# ---------------------------------------------------------------- interrupted saves


def interrupted_swap(tmp_path, legacy: bool = False) -> Path:
    """The state a kill between the two renames of a non-atomic swap leaves: old aside, new aside, none in place."""
    target = tmp_path / "idx"
    write(target, 1)
    write(tmp_path / "new", 2)
    tag = "deadbeef" if legacy else "4242-deadbeef"
    os.rename(target, tmp_path / f".idx.retired-{tag}")
    os.rename(tmp_path / "new", tmp_path / f".idx.writing-{tag.replace('deadbeef', '0badc0de')}")
    return target


def test_a_kill_between_two_renames_is_rolled_forward_by_load(tmp_path):
    target = interrupted_swap(tmp_path)
    assert read_value(target) == 2  # the complete new save
    assert siblings(target) == ["idx"]


def test_an_old_lirlabs_interrupted_swap_is_restored(tmp_path):
    """lirlab before 0.2 left the previous index only in ``.NAME.retired-XXXXXXXX`` after such a kill."""
    target = tmp_path / "idx"
    write(target, 1)
    os.rename(target, tmp_path / ".idx.retired-deadbeef")
    assert read_value(target) == 1
    assert siblings(target) == ["idx"]


def test_the_fallback_two_rename_swap_commits_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "_swap_supported", False)
    write(tmp_path / "idx", 1)
    write(tmp_path / "idx", 2)
    assert read_value(tmp_path / "idx") == 2 and siblings(tmp_path / "idx") == ["idx"]


def test_a_save_that_fails_midway_keeps_the_old_artifact_and_no_leftover(tmp_path):
    write(tmp_path / "idx", 1)
    with pytest.raises(RuntimeError, match="boom"):
        with ArtifactWriter(tmp_path / "idx", TYPE, 1) as w:
            w.save_array("a", np.zeros(3))
            raise RuntimeError("boom")
    assert read_value(tmp_path / "idx") == 1 and siblings(tmp_path / "idx") == ["idx"]


@posix_only
def test_a_dead_writers_leftover_is_cleaned_but_a_live_writers_is_not(tmp_path):
    write(tmp_path / "idx", 1)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: start a save, say so, then hang holding its lock
        try:
            os.close(ready_r)
            w = ArtifactWriter(tmp_path / "idx", TYPE, 1).__enter__()
            w.save_array("a", np.zeros(1000))
            os.write(ready_w, b"1")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"1"
    staging = [n for n in siblings(tmp_path / "idx") if n.startswith(".idx.writing-")]
    assert len(staging) == 1 and staging[0].startswith(f".idx.writing-{pid}-")
    assert read_value(tmp_path / "idx") == 1
    assert clean_leftovers(tmp_path / "idx") == [] and (tmp_path / staging[0]).is_dir()  # alive: kept
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert read_value(tmp_path / "idx") == 1  # the load removes the dead writer's folder
    assert siblings(tmp_path / "idx") == ["idx"]


def test_leftovers_of_old_lirlab_versions_are_removed_once_old(tmp_path):
    write(tmp_path / "idx", 1)
    old = tmp_path / ".idx.writing-0badc0de"
    old.mkdir()
    (old / "vectors.npy").write_bytes(b"x" * 100)
    young = tmp_path / ".idx.retired-feedf00d"
    young.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    unrelated = tmp_path / ".idx.writing-by-someone-else"
    unrelated.mkdir()
    assert clean_leftovers(tmp_path / "idx") == [".idx.writing-0badc0de"]
    assert young.is_dir() and unrelated.is_dir()


def test_a_first_save_killed_before_its_commit_leaves_no_index_and_is_cleaned(tmp_path):
    staging = tmp_path / ".idx.writing-4242-0badc0de"
    write(tmp_path / "complete", 7)
    os.rename(tmp_path / "complete", staging)  # complete, but its writer died before renaming it
    with pytest.raises(ArtifactError, match="no such index folder"):
        read_artifact(tmp_path / "idx", TYPE, 1)
    write(tmp_path / "idx", 1)
    assert siblings(tmp_path / "idx") == ["idx"]


# ---------------------------------------------------------------- readers and writers at once


def test_a_reader_sees_the_old_or_the_new_artifact_when_replaced_mid_read(tmp_path, monkeypatch):
    """The folder is swapped (and the old one deleted) after the reader opened its metadata."""
    target = tmp_path / "idx"
    write(target, 1)
    opened = []
    original = storage._open_in

    def open_and_replace(dir_fd, name):
        opened.append(name)
        if len(opened) == 2:  # metadata.json was read, a.npy is next
            write(target, 2)
        return original(dir_fd, name)

    monkeypatch.setattr(storage, "_open_in", open_and_replace)
    assert read_value(target) == 2
    assert opened.count("metadata.json") == 2  # it started over

    opened.clear()

    def replace_after_all_open(dir_fd, name):
        fd = original(dir_fd, name)
        opened.append(name)
        if name == "ids.json":  # every file is open: the reader keeps the old save whole
            write(target, 3)
        return fd

    monkeypatch.setattr(storage, "_open_in", replace_after_all_open)
    assert read_value(target) == 2
    assert read_value(target) == 3


@posix_only
def test_two_writers_in_turns_each_commit_whole_or_are_refused_in_one_line(tmp_path):
    """Two processes saving over and over: each save commits whole, or is refused at its start because
    the other is saving (exit code 3 counts those); readers meanwhile see one whole save."""
    target = tmp_path / "idx"
    write(target, 0)
    children = []
    for value in (1, 2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                refused = 0
                for _ in range(15):
                    try:
                        write(target, value)
                    except ArtifactError as e:
                        assert "another process" in str(e) and "\n" not in str(e)
                        refused += 1
                code = 0 if refused < 15 else 3
            finally:
                os._exit(code)
        children.append(pid)
    seen, statuses = set(), {}
    while len(statuses) < len(children):
        seen.add(read_value(target))  # readers meanwhile see one whole save
        for pid in children:
            if pid not in statuses:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    statuses[pid] = os.waitstatus_to_exitcode(status)
    assert list(statuses.values()) == [0, 0]
    assert read_value(target) in (1, 2) and seen <= {0, 1, 2}
    assert siblings(target) == ["idx"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsynced fds")
def test_every_file_and_the_folders_of_the_commit_are_fsynced(tmp_path, monkeypatch):
    synced = []
    original = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        original(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write(tmp_path / "idx", 1)
    names = [Path(p).name for p in synced]
    for file in ("a.npy", "b.npy", "ids.json", "metadata.json"):
        assert file in names
    assert any(n.startswith(".idx.writing-") for n in names)  # the new folder, before the swap
    assert str(tmp_path) in synced  # the parent, after it
    assert names.index("metadata.json") > max(names.index(f) for f in ("a.npy", "b.npy", "ids.json"))


# ---------------------------------------------------------------- tampered and malformed metadata


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("files"), "checksum mismatch"),
        (lambda m: m["files"].pop("a.npy"), "checksum mismatch"),
        (lambda m: m["files"]["a.npy"].update(sha256="0" * 64), "checksum mismatch"),
    ],
)
def test_editing_the_metadata_is_detected(tmp_path, change, message):
    write(tmp_path / "idx", 1)
    edit_metadata(tmp_path / "idx", change)
    with pytest.raises(ArtifactError, match=message):
        read_artifact(tmp_path / "idx", TYPE, 1, verify=False)


def test_an_unlisted_array_cannot_be_opened_even_with_a_recomputed_checksum(tmp_path):
    write(tmp_path / "idx", 1)
    edit_metadata(tmp_path / "idx", lambda m: m["files"].pop("a.npy"), rechecksum=True)
    art = read_artifact(tmp_path / "idx", TYPE, 1)
    with pytest.raises(ArtifactError, match="does not list a.npy"):
        art.array("a")
    edit_metadata(tmp_path / "idx", lambda m: m.pop("files"), rechecksum=True)
    with pytest.raises(ArtifactError, match="'files' table is missing"):
        read_artifact(tmp_path / "idx", TYPE, 1)


@pytest.mark.parametrize(
    "files, message",
    [
        ([], "'files' table is missing or not a table"),
        ({"a.npy": None}, "needs 'bytes'"),
        ({"a.npy": {"bytes": "400"}}, "needs 'bytes'"),
        ({"a.npy": {"bytes": True, "sha256": "0" * 64}}, "needs 'bytes'"),
        ({"a.npy": {"bytes": 10, "sha256": 5}}, "needs 'bytes'"),
        ({"../outside.npy": {"bytes": 10, "sha256": "0" * 64}}, "not a plain file name"),
        ({"/etc/passwd": {"bytes": 10, "sha256": "0" * 64}}, "not a plain file name"),
        ({"sub/a.npy": {"bytes": 10, "sha256": "0" * 64}}, "not a plain file name"),
        ({"..": {"bytes": 10, "sha256": "0" * 64}}, "not a plain file name"),
        ({"metadata.json": {"bytes": 10, "sha256": "0" * 64}}, "not a plain file name"),
    ],
)
def test_malformed_or_escaping_file_entries_are_artifact_errors(tmp_path, files, message):
    outside = tmp_path / "outside.npy"
    outside.write_bytes(b"secret" * 1000)
    write(tmp_path / "idx", 1)
    edit_metadata(tmp_path / "idx", lambda m: m.update(files=files), rechecksum=True)
    with pytest.raises(ArtifactError, match=message) as error:
        read_artifact(tmp_path / "idx", TYPE, 1)
    assert "6000" not in str(error.value)  # nothing about the outside file leaks


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "null", '{"type": 3}'])
def test_metadata_of_the_wrong_shape_is_an_artifact_error(tmp_path, body):
    write(tmp_path / "idx", 1)
    (tmp_path / "idx" / "metadata.json").write_text(body)
    with pytest.raises(ArtifactError):
        read_artifact(tmp_path / "idx", TYPE, 1)


def test_a_symlinked_file_inside_the_folder_is_refused(tmp_path):
    write(tmp_path / "idx", 1)
    (tmp_path / "elsewhere.npy").write_bytes((tmp_path / "idx" / "a.npy").read_bytes())
    (tmp_path / "idx" / "a.npy").unlink()
    (tmp_path / "idx" / "a.npy").symlink_to(tmp_path / "elsewhere.npy")
    with pytest.raises(ArtifactError, match="a.npy: is a symbolic link"):
        read_artifact(tmp_path / "idx", TYPE, 1)


def test_writer_refuses_names_that_are_not_plain(tmp_path):
    with pytest.raises(ArtifactError, match="not a plain file name"):
        with ArtifactWriter(tmp_path / "idx", TYPE, 1) as w:
            w.save_array("../escape", np.zeros(2))
    assert not (tmp_path / "escape.npy").exists() and siblings(tmp_path / "idx") == []


def test_sizes_are_checked_against_the_npy_header_even_unverified(tmp_path):
    """A truncated array whose metadata was rewritten to match still fails: its header says more."""
    write(tmp_path / "idx", 1)
    a = tmp_path / "idx" / "a.npy"
    a.write_bytes(a.read_bytes()[:-16])
    edit_metadata(
        tmp_path / "idx", lambda m: m["files"]["a.npy"].update(bytes=a.stat().st_size), rechecksum=True
    )
    art = read_artifact(tmp_path / "idx", TYPE, 1, verify=False)
    for mmap in (False, True):
        with pytest.raises(ArtifactError, match=r"a.npy: \d+ bytes, but its header describes \d+.*truncated"):
            art.array("a", mmap=mmap)


def test_object_arrays_are_never_unpickled(tmp_path):
    write(tmp_path / "idx", 1)
    a = tmp_path / "idx" / "a.npy"
    np.save(a, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    edit_metadata(
        tmp_path / "idx", lambda m: m["files"]["a.npy"].update(bytes=a.stat().st_size), rechecksum=True
    )
    with pytest.raises(ArtifactError, match="Python objects"):
        read_artifact(tmp_path / "idx", TYPE, 1, verify=False).array("a")


def test_mmap_and_plain_reads_agree_and_survive_the_folder_being_replaced(tmp_path):
    write(tmp_path / "idx", 1, n=5000)
    art = read_artifact(tmp_path / "idx", TYPE, 1)
    mapped = art.array("b", mmap=True)
    write(tmp_path / "idx", 2, n=5000)  # unlinks the mapped file: its pages stay valid
    assert np.array_equal(mapped, np.full((5000, 3), 1, dtype=np.float32))
    assert np.array_equal(art.array("b"), mapped)  # the open file, not the new one
    assert read_value(tmp_path / "idx") == 2


def test_lone_surrogates_in_json_round_trip(tmp_path):
    with ArtifactWriter(tmp_path / "idx", TYPE, 1) as w:
        w.save_json("ids", ["caf\udce9", "ok"])
        w.metadata["config"] = {"note": "\udc80"}
    art = read_artifact(tmp_path / "idx", TYPE, 1)
    assert art.json("ids") == ["caf\udce9", "ok"] and art.metadata["config"]["note"] == "\udc80"


def test_peek_type_explains_what_is_not_an_index(tmp_path):
    write(tmp_path / "idx", 1)
    assert storage.peek_type(tmp_path / "idx") == TYPE
    with pytest.raises(ArtifactError, match="no metadata.json"):
        storage.peek_type(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="is a file"):
        storage.peek_type(tmp_path / "file")


def test_overwrite_moves_a_folder_of_other_files_aside_instead_of_deleting_it(tmp_path):
    from lirlab.storage import ReplacedFolderWarning

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    with pytest.warns(ReplacedFolderWarning, match="moved to"):
        write(folder, 2, overwrite=True)
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("mine.replaced-")]
    assert (kept / "thesis.tex").read_text() == "years of work" and read_value(folder) == 2
    write(folder, 3)  # replacing our own artifact deletes the old one, leaves the user's copy alone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["mine", kept.name])


def test_leftover_cleaning_never_removes_a_look_alike_folder_lirlab_did_not_write(tmp_path):
    from lirlab.storage import clean_leftovers

    look_alike = tmp_path / ".idx.writing-123-0badc0de"
    (look_alike / "sub").mkdir(parents=True)
    (look_alike / "sub" / "notes.txt").write_text("mine")
    staging = tmp_path / ".idx.writing-124-0badc0df"
    staging.mkdir()
    (staging / "vectors.npy").write_bytes(b"partial")
    assert clean_leftovers(tmp_path / "idx") == [staging.name]
    assert (look_alike / "sub" / "notes.txt").read_text() == "mine"


def swap_after_a_user_moved_in(tmp_path, swapped: list, files=(("thesis.tex", "years of work"),)):
    """``storage._swap`` as if, between the check and the swap, a user's folder holding ``files`` took
    the target's place (ours moved elsewhere); what the real swap returned is appended to ``swapped``."""
    real_swap = storage._swap

    def swap(src, dst):
        os.rename(dst, tmp_path / "ours-elsewhere")
        dst.mkdir()
        for name, text in files:
            (dst / name).write_text(text)
        swapped.append(real_swap(src, dst))
        return swapped[-1]

    return swap


def test_a_folder_put_in_place_between_the_check_and_the_swap_is_moved_aside_not_deleted(
    tmp_path, monkeypatch
):
    from lirlab.storage import ReplacedFolderWarning

    target = tmp_path / "idx"
    write(target, 1)
    monkeypatch.setattr(storage, "_swap", swap_after_a_user_moved_in(tmp_path, []))
    with pytest.warns(ReplacedFolderWarning, match="moved to"):
        write(target, 2)
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("idx.replaced-")]
    assert (kept / "thesis.tex").read_text() == "years of work" and read_value(target) == 2


@pytest.mark.parametrize("files", [(), (("metadata.json", "{}"),)], ids=["empty", "names-like-ours"])
def test_a_users_folder_holding_only_names_ours_held_is_moved_aside_not_deleted(tmp_path, monkeypatch, files):
    from lirlab.storage import ReplacedFolderWarning

    target = tmp_path / "idx"
    write(target, 1)
    monkeypatch.setattr(storage, "_swap", swap_after_a_user_moved_in(tmp_path, [], files))
    with pytest.warns(ReplacedFolderWarning, match="moved to"):
        write(target, 2)
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("idx.replaced-")]
    assert {p.name: p.read_text() for p in kept.iterdir()} == dict(files) and read_value(target) == 2


def test_an_interrupt_right_after_the_swap_never_deletes_the_folder_swapped_out(tmp_path, monkeypatch):
    """Ctrl-C in a notebook between the swap and the clean-up: the replaced folder (here a user's, put
    in place after the check) is left for the checked removal, never deleted as our staging folder."""
    target = tmp_path / "idx"
    write(target, 1)
    swapped = []

    def interrupted_after_the_swap(path):
        if swapped:
            raise KeyboardInterrupt

    monkeypatch.setattr(storage, "_swap", swap_after_a_user_moved_in(tmp_path, swapped))
    monkeypatch.setattr(storage, "fsync_folder", interrupted_after_the_swap)
    with pytest.raises(KeyboardInterrupt):
        write(target, 2)
    if not swapped[0]:
        pytest.skip("this file system cannot swap folders atomically")
    [kept] = [p for p in tmp_path.rglob("thesis.tex")]
    assert kept.read_text() == "years of work" and read_value(target) == 2
