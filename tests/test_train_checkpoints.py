"""Training checkpoints: only good weights are named good, writes are durable and verified, kills leave
nothing.

The tiny random BERT of tests/test_train.py keeps every run to a few seconds.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lirlab.encoder import ColBERT
from lirlab.storage import ArtifactError, ReplacedFolderWarning, metadata_checksum
from lirlab.train import TrainingData, TrainingError, checkpoints, train
from lirlab.train.checkpoints import (
    load_checkpoint,
    save_checkpoint,
    save_pylate,
    save_stanford,
    verify_checkpoint,
)
from tests.test_train import DOCS, FAST, PAIRS, QUERIES, tiny_folder

# the package exports a function named checkpoints, which hides the module of that name
checkpoint_module = importlib.import_module("lirlab.train.checkpoints")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_folder(tmp_path_factory.mktemp("tiny"))


def fresh(tiny_dir) -> ColBERT:
    return ColBERT.load(tiny_dir, device="cpu", query_maxlen=8, doc_maxlen=16)


@pytest.fixture
def pairs():
    return TrainingData.from_pairs(QUERIES, DOCS, PAIRS, name="tiny")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def all_weights_finite(checkpoint: Path) -> bool:
    files = [
        checkpoint / "stanford" / "model.safetensors",
        *sorted((checkpoint / "pylate").rglob("*.safetensors")),
    ]
    return all(torch.isfinite(t).all() for f in files for t in load_file(str(f)).values())


# -- only good weights are named good ---------------------------------------------------------------


@pytest.mark.parametrize("max_grad_norm", [1.0, 0.0], ids=["clipped", "unclipped"])
def test_a_nan_gradient_stops_before_the_update_and_every_kept_checkpoint_has_finite_weights(
    max_grad_norm, tiny_dir, pairs, tmp_path
):
    encoder = fresh(tiny_dir)
    backward_calls = []

    def poison_third_step(grad):
        backward_calls.append(1)
        return grad * float("nan") if len(backward_calls) == 3 else grad

    encoder.model.get_input_embeddings().weight.register_hook(poison_third_step)
    knobs = {**FAST, "steps": 5, "save_every": 1, "keep_checkpoints": 0, "max_grad_norm": max_grad_norm}
    with pytest.raises(TrainingError, match=r"step 3.*last good checkpoint: .*checkpoint-000002") as error:
        train(encoder, pairs, tmp_path / "run", progress=False, **knobs)
    assert "\n" not in str(error.value)
    saved = checkpoints(tmp_path / "run")
    assert [c.name for c in saved] == ["checkpoint-000001", "checkpoint-000002"]
    assert all(all_weights_finite(c) for c in saved)
    assert all(torch.isfinite(p).all() for p in encoder.model.parameters()), "the update was not applied"


def test_weights_that_are_not_finite_are_never_written_as_a_checkpoint(tiny_dir, tmp_path):
    encoder = fresh(tiny_dir)
    from lirlab.train import prepare_encoder

    encoder = prepare_encoder(encoder)
    with torch.no_grad():
        encoder.projections[0].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="not finite.*refusing"):
        save_checkpoint(tmp_path / "checkpoint-000001", encoder)
    assert not (tmp_path / "checkpoint-000001").exists() and leftovers(tmp_path) == []


# -- a checkpoint is a lirlab artifact, layouts unchanged --------------------------------------------


def test_a_checkpoint_is_a_checksummed_artifact_around_the_unchanged_layouts(tiny_dir, pairs, tmp_path):
    result = train(fresh(tiny_dir), pairs, tmp_path / "run", progress=False, **FAST)
    folder = result.checkpoint
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["type"] == "lirlab.train.checkpoint" and meta["checksum"] == metadata_checksum(meta)
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    recorded = set(meta["files"]) | set(meta["tree"])
    assert recorded == on_disk - {"metadata.json"}
    assert meta["trainer_state"]["step"] == 4
    # the Stanford and PyLate folders hold what they held before lirlab's metadata was added
    tokenizer_files = tmp_path / "tokenizer"
    result.encoder.tokenizer.save_pretrained(str(tokenizer_files))
    tokenizer_names = {p.name for p in tokenizer_files.iterdir()}
    stanford = {p.name for p in (folder / "stanford").iterdir()}
    assert stanford == tokenizer_names | {"model.safetensors", "config.json", "artifact.metadata"}
    pylate = {p.relative_to(folder / "pylate").as_posix() for p in (folder / "pylate").rglob("*")}
    assert pylate == tokenizer_names | {
        "model.safetensors",
        "config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Dense",
        "1_Dense/config.json",
        "1_Dense/model.safetensors",
    }
    verify_checkpoint(folder)
    loaded = load_checkpoint(folder, layout="pylate", device="cpu")
    texts = list(QUERIES.values())
    assert torch.equal(loaded.encode_queries(texts).vectors, result.encoder.encode_queries(texts).vectors)


def test_every_file_of_a_checkpoint_and_every_folder_is_fsynced(tiny_dir, tmp_path, monkeypatch):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name what an fd points at")
    from lirlab.train import prepare_encoder

    encoder = prepare_encoder(fresh(tiny_dir))
    synced: set[str] = set()
    real = os.fsync

    def recording(fd):
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    folder = save_checkpoint(tmp_path / "checkpoint-000001", encoder)
    monkeypatch.setattr(os, "fsync", real)
    # files and folders are synced under the staging folder's name, before it is renamed into place
    synced_inside = set()
    for name in synced:
        parts = Path(name).relative_to(tmp_path).parts if name.startswith(str(tmp_path) + "/") else ()
        if parts and parts[0].startswith(".checkpoint-000001.writing-"):
            synced_inside.add("/".join(parts[1:]) or ".")
    expected = {p.relative_to(folder).as_posix() for p in folder.rglob("*")} | {"."}
    assert expected - synced_inside == set(), "not fsynced"
    assert str(tmp_path) in synced, "the parent folder is synced after the rename"


# -- damage is refused in one line -------------------------------------------------------------------


def flip_last_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[-1] ^= 0x01
    file.write_bytes(bytes(data))


@pytest.fixture
def saved(tiny_dir, tmp_path) -> Path:
    from lirlab.train import prepare_encoder

    return save_checkpoint(tmp_path / "checkpoint-000001", prepare_encoder(fresh(tiny_dir)))


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("flip stanford weights", r"stanford/model\.safetensors: checksum mismatch"),
        ("flip pylate dense", r"pylate/1_Dense/model\.safetensors: checksum mismatch"),
        ("truncate", r"pylate/config\.json: \d+ bytes, expected \d+"),
        ("delete", r"stanford/config\.json: missing"),
        ("symlink", r"stanford/tokenizer_config\.json: .*symbolic link"),
        ("path outside", r"lists '\.\./outside', which is not a path inside the checkpoint"),
        ("metadata edited", r"checksum mismatch"),
    ],
)
def test_a_damaged_checkpoint_is_refused_in_one_line(saved, damage, expected, tmp_path):
    meta_file = saved / "metadata.json"
    if damage == "flip stanford weights":
        flip_last_byte(saved / "stanford" / "model.safetensors")
    elif damage == "flip pylate dense":
        flip_last_byte(saved / "pylate" / "1_Dense" / "model.safetensors")
    elif damage == "truncate":
        file = saved / "pylate" / "config.json"
        file.write_bytes(file.read_bytes()[:-3])
    elif damage == "delete":
        (saved / "stanford" / "config.json").unlink()
    elif damage == "symlink":
        elsewhere = tmp_path / "tokenizer_config.json"
        elsewhere.write_bytes((saved / "stanford" / "tokenizer_config.json").read_bytes())
        (saved / "stanford" / "tokenizer_config.json").unlink()
        (saved / "stanford" / "tokenizer_config.json").symlink_to(elsewhere)
    elif damage == "path outside":
        (tmp_path / "outside").write_text("x")
        meta = json.loads(meta_file.read_text())
        meta["tree"]["../outside"] = {"bytes": 1, "sha256": "0" * 64}
        meta["checksum"] = metadata_checksum(meta)
        meta_file.write_text(json.dumps(meta))
    else:
        meta = json.loads(meta_file.read_text())
        meta["tree"]["stanford/config.json"]["bytes"] += 1
        meta_file.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=expected) as error:
        load_checkpoint(saved, device="cpu")
    assert "\n" not in str(error.value)


def test_resume_skips_a_damaged_newest_checkpoint_keeps_it_aside_and_repeats_the_losses(
    tiny_dir, pairs, tmp_path
):
    knobs = {**FAST, "steps": 4, "save_every": 2, "keep_checkpoints": 0}
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # stopped once the last checkpoint is written: the run is whole
        interrupted_after(fresh(tiny_dir), pairs, run, knobs, step=4)
    uninterrupted = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    newest = run / "checkpoint-000004"
    flip_last_byte(newest / "stanford" / "model.safetensors")
    with pytest.warns(
        UserWarning, match=r"checkpoint-000004.*checksum mismatch.*resuming from .*checkpoint-000002"
    ):
        resumed = train(fresh(tiny_dir), pairs, run, resume=True, progress=False)
    assert resumed.log.step.tolist() == [1, 2, 3, 4]
    assert resumed.log.loss.tolist() == uninterrupted
    kept = [p.name for p in run.iterdir() if p.name.startswith("checkpoint-000004.damaged-")]
    assert len(kept) == 1, "the damaged checkpoint is kept aside, not deleted"
    assert [c.name for c in checkpoints(run)] == ["checkpoint-000002", "checkpoint-000004"]
    assert leftovers(run) == []


def interrupted_after(encoder, pairs, out, knobs, step):
    """Train with ``knobs`` and stop (KeyboardInterrupt) right after the checkpoint of ``step`` is written."""
    real = checkpoint_module.save_checkpoint
    from lirlab.train import loop

    def stop_after(folder, *args, **kwargs):
        written = real(folder, *args, **kwargs)
        if Path(folder).name == f"checkpoint-{step:06d}":
            raise KeyboardInterrupt
        return written

    loop.save_checkpoint = stop_after
    try:
        train(encoder, pairs, out, progress=False, **knobs)
    finally:
        loop.save_checkpoint = real


def test_resume_refuses_in_one_line_when_no_checkpoint_verifies(tiny_dir, pairs, tmp_path):
    run = tmp_path / "run"
    train(fresh(tiny_dir), pairs, run, progress=False, **{**FAST, "steps": 2})
    flip_last_byte(run / "checkpoint-000002" / "optimizer.safetensors")
    with pytest.raises(ValueError, match=r"no checkpoint .* verifies.*checkpoint-000002.*overwrite") as error:
        train(fresh(tiny_dir), pairs, run, resume=True, progress=False)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("where", ["NOTES.md", "stanford/NOTES.md"])
def test_rotating_checkpoints_never_deletes_what_a_user_added_to_one(where, tiny_dir, pairs, tmp_path):
    knobs = {**FAST, "steps": 4, "save_every": 2, "keep_checkpoints": 1}
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        interrupted_after(fresh(tiny_dir), pairs, run, knobs, step=2)
    (run / "checkpoint-000002" / where).write_text("why this one is good")
    with pytest.warns(
        ReplacedFolderWarning, match=rf"checkpoint-000002 holds what lirlab did not write \({where}\)"
    ):
        train(fresh(tiny_dir), pairs, run, resume=True, progress=False)
    assert [c.name for c in checkpoints(run)] == ["checkpoint-000004"]
    (aside,) = [p for p in run.iterdir() if p.name.startswith("checkpoint-000002.replaced-")]
    assert (aside / where).read_text() == "why this one is good"


def test_resume_first_puts_back_a_checkpoint_whose_replacement_was_cut_between_two_renames(
    tiny_dir, pairs, tmp_path
):
    run = tmp_path / "run"
    train(fresh(tiny_dir), pairs, run, progress=False, **{**FAST, "save_every": 2, "keep_checkpoints": 0})
    written = (run / "checkpoint-000004" / "metadata.json").read_bytes()
    # where no atomic swap exists, a writer renames the old folder aside before renaming the new one in
    (run / "checkpoint-000004").rename(run / f".checkpoint-000004.retired-{os.getpid()}-0badc0de")
    resumed = train(fresh(tiny_dir), pairs, run, resume=True, progress=False)
    assert resumed.checkpoint == run / "checkpoint-000004" and resumed.steps == 4
    assert len(resumed.log) == 4 and resumed.seconds == json.loads(written)["trainer_state"]["train_seconds"]
    assert (resumed.checkpoint / "metadata.json").read_bytes() == written, "put back, not trained again"
    verify_checkpoint(resumed.checkpoint)
    assert leftovers(run) == []


# -- a kill while writing leaves nothing behind --------------------------------------------------------

KILLED_WRITE = """
import importlib, os, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from lirlab.encoder import ColBERT
from lirlab.train import prepare_encoder
checkpoints = importlib.import_module("lirlab.train.checkpoints")

real = checkpoints.CHECKPOINT_LAYOUTS["pylate"]

def killed_midway(encoder, folder):
    real(encoder, folder)
    os._exit(9)  # as kill -9: no clean-up runs

checkpoints.CHECKPOINT_LAYOUTS["pylate"] = killed_midway
encoder = prepare_encoder(ColBERT.load({tiny!r}, device="cpu", query_maxlen=8, doc_maxlen=16))
checkpoints.save_checkpoint(Path({out!r}) / "checkpoint-000004", encoder)
"""


def test_a_checkpoint_write_killed_midway_leaves_nothing_behind_once_the_run_resumes(
    tiny_dir, pairs, tmp_path
):
    run = tmp_path / "run"
    train(fresh(tiny_dir), pairs, run, progress=False, **{**FAST, "steps": 2})
    script = KILLED_WRITE.format(repo=str(REPO), tiny=str(tiny_dir), out=str(run))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 9, done.stderr[-2000:]
    assert [c.name for c in checkpoints(run)] == ["checkpoint-000002"]
    (staging,) = leftovers(run)
    assert staging.startswith(".checkpoint-000004.writing-") and (run / staging / "stanford").is_dir()
    resumed = train(fresh(tiny_dir), pairs, run, resume=True, progress=False)
    assert resumed.steps == 2 and resumed.checkpoint == run / "checkpoint-000002"
    assert leftovers(run) == [], "the killed writer's folder was removed on resume"


# -- exports next to a user's files --------------------------------------------------------------------


@pytest.mark.parametrize("write", [save_stanford, save_pylate])
def test_exporting_over_a_folder_of_the_users_files_is_refused_and_keeps_them(write, tiny_dir, tmp_path):
    from lirlab.train import prepare_encoder

    encoder = prepare_encoder(fresh(tiny_dir))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ArtifactError, match="not a lirlab artifact.*thesis.tex"):
        write(encoder, mine)
    assert (mine / "thesis.tex").read_text() == "years of work" and leftovers(tmp_path) == []
    again = write(encoder, tmp_path / "export")
    write(encoder, again)  # its own export is replaced
    texts = list(DOCS.values())[:2]
    loaded = ColBERT.load(again, device="cpu")
    assert torch.equal(
        loaded.encode_documents(texts, progress=False).vectors,
        encoder.encode_documents(texts, progress=False).vectors,
    )


def test_starting_over_never_deletes_what_a_user_added_to_the_mined_negatives(tiny_dir, pairs, tmp_path):
    from lirlab.train import Negatives

    mined = Negatives({"q1": ("d2", "d3"), "q2": ("d1",)})
    run = tmp_path / "run"
    train(fresh(tiny_dir), pairs, run, mined=mined, progress=False, **FAST)
    (run / "negatives" / "NOTES.md").write_text("mined with the old model")
    with pytest.warns(ReplacedFolderWarning, match=r"negatives holds what lirlab did not write \(NOTES.md\)"):
        train(fresh(tiny_dir), pairs, run, mined=mined, overwrite=True, progress=False, **FAST)
    (aside,) = [p for p in run.iterdir() if p.name.startswith("negatives.replaced-")]
    assert (aside / "NOTES.md").read_text() == "mined with the old model"
