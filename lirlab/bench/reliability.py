"""Reliability trials of everything lirlab saves: kill -9 at random moments, damaged files, readers racing
writers, two writers at once — for every registered index kind and for training checkpoints.

Each trial checks the promises of :mod:`lirlab.storage`:

* **never silently wrong**: whatever loads is exactly one of the saves (its ids and its search results
  on fixed queries, or a checkpoint's vectors for fixed texts, equal those of the old or the new save,
  never a mix of two saves); a damaged file is refused with one clear line, never loaded as something
  else and never followed through a symbolic link;
* **never lost**: what existed before a killed save still loads (``verify=True``);
* **nothing left behind**: after the next load or save, no writer's folder remains beside the artifact.

Writers are forked children (``os.fork``, so each artifact is built once; torch runs single-threaded so
a fork is safe) that save in a loop and are killed with ``SIGKILL`` after a random delay drawn over about
two save durations, so kills land in every phase: writing files, fsync, the swap, deleting the old copy.
POSIX only. Every count is a knob: the tests run a few trials of each case, ``lirlab bench reliability``
(or ``python -m lirlab.bench.reliability``) the full set.

Examples
--------
>>> report = run_reliability(trials=1, read_trials=2, writer_rounds=1, damage_trials=2, n_docs=20,
...                          kinds=("flat",), checkpoints=False)
>>> report["totals"]["silent_wrong"], report["totals"]["lost"], report["totals"]["left_behind"]
(0, 0, 0)
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import random
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lirlab import storage
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.storage import ArtifactError

#: The words of the synthetic documents (the BM25 kinds index their texts).
WORDS = tuple(f"w{i}" for i in range(50))

#: How a file of a saved artifact is damaged; a folder inside it is removed, swapped or linked.
FILE_DAMAGE = ("flip", "truncate", "append", "delete", "swap", "symlink")
FOLDER_DAMAGE = ("delete", "swap", "symlink")
#: Damage a load must refuse even with ``verify=False``: sizes and structure are always checked.
STRUCTURAL_DAMAGE = ("truncate", "append", "delete")

#: Exit codes of a forked writer.
_SAVED, _CRASHED, _REFUSED = 0, 2, 3


def _encoding(n_docs: int, seed: int, prefix: str, dim: int = 64, kind: str = "document") -> Encoding:
    """Random unit vectors with token ids and the texts those ids spell (for the BM25 kinds)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 40, (n_docs,), generator=g)
    total = int(lengths.sum())
    token_ids = torch.randint(0, len(WORDS), (total,), generator=g)
    offsets = offsets_from_lengths(lengths)
    texts = tuple(
        " ".join(WORDS[int(t)] for t in token_ids[int(offsets[i]) : int(offsets[i + 1])])
        for i in range(n_docs)
    )
    return Encoding(
        ids=tuple(f"{prefix}{i}" for i in range(n_docs)),
        vectors=torch.nn.functional.normalize(torch.randn(total, dim, generator=g), dim=1),
        token_ids=token_ids,
        offsets=offsets,
        vocab=WORDS,
        kind=kind,
        texts=texts,
    )


def _quietly(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


def _close(artifact) -> None:
    """Release what a loaded artifact holds open (an embedded Qdrant shard); nothing for most kinds."""
    close = getattr(artifact, "close", None)
    if close is not None:
        close()


@dataclass(frozen=True)
class Subject:
    """Something lirlab saves, two different saves of it, and how to tell which one a folder holds.

    ``save(version, folder)`` writes save ``version`` (0 or 1); ``signature(folder, verify)`` loads the
    folder and returns what identifies a save (raising what the load raises); ``signatures`` are those
    of the two saves.
    """

    name: str
    save: Callable[[int, Path], None]
    signature: Callable[[Path, bool], tuple]
    signatures: tuple[tuple, tuple]


def _index_subject(kind: str, n_docs: int, queries: Encoding) -> Subject:
    from lirlab.index.registry import build_params, kind_class

    cls = kind_class(kind)
    small = {"n_centroids": 64, "nbits": 2}  # the IVF kinds' defaults are sized for real corpora
    knobs = {k: v for k, v in small.items() if k in build_params(kind)}
    versions = [
        _quietly(lambda seed=seed, prefix=prefix: cls.from_encoding(_encoding(n_docs, seed, prefix), **knobs))
        for seed, prefix in ((1, "old"), (2, "new"))
    ]

    def identify(index) -> tuple:
        hits = _quietly(lambda: index.search_encoded(queries, k=10))
        return tuple(index.docnos), tuple((tuple(p.tolist()), tuple(s.tolist())) for p, s in hits)

    def signature(folder: Path, verify: bool) -> tuple:
        index = _quietly(lambda: cls.load(folder, verify=verify))
        try:
            return identify(index)
        finally:
            _close(index)

    return Subject(
        kind, lambda v, folder: versions[v].save(folder), signature, tuple(identify(v) for v in versions)
    )


def _tiny_encoder(folder: Path, seed: int):
    """A two-layer random BERT with a whitespace-word vocabulary, ready to train (markers, projection)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from lirlab.encoder import ColBERT
    from lirlab.train import prepare_encoder

    folder.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]
    (folder / "vocab.txt").write_text("\n".join(specials + list(WORDS)) + "\n")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(specials) + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(folder))
    BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(str(folder))
    encoder = ColBERT.load(folder, device="cpu", query_maxlen=8, doc_maxlen=16)
    return prepare_encoder(encoder, dim=16, seed=seed)


def _checkpoint_subject(root: Path) -> Subject:
    from lirlab.train.checkpoints import CHECKPOINT_LAYOUTS, load_checkpoint, save_checkpoint

    encoders = [_tiny_encoder(root / f"tiny-{seed}", seed) for seed in (1, 2)]
    texts = [" ".join(WORDS[i : i + 6]) for i in range(0, 30, 6)]

    def identify(encoder) -> str:
        vectors = encoder.encode_documents(texts).vectors.detach().float().contiguous()
        return hashlib.sha256(vectors.numpy().tobytes()).hexdigest()

    def signature(folder: Path, verify: bool) -> tuple:
        """The vectors of every layout the checkpoint holds, each read back on its own."""
        return tuple(
            identify(load_checkpoint(folder, layout=layout, device="cpu", verify=verify))
            for layout in CHECKPOINT_LAYOUTS
        )

    return Subject(
        "checkpoint",
        lambda v, folder: save_checkpoint(folder, encoders[v]),
        signature,
        tuple((identify(e),) * len(CHECKPOINT_LAYOUTS) for e in encoders),
    )


def _outcome(subject: Subject, folder: Path, verify: bool = True) -> tuple[str, str]:
    """``("old" | "new" | "other", "")`` for what loads, or ``("refused" | "unclear", message)``."""
    try:
        signature = subject.signature(folder, verify)
    except ArtifactError as e:
        return "refused", str(e)
    except Exception as e:  # noqa: BLE001  (anything else is what a trial counts as unclear)
        return "unclear", f"{type(e).__name__}: {e}".splitlines()[0][:300]
    old, new = subject.signatures
    return ("old" if signature == old else "new" if signature == new else "other"), ""


def _fork_saver(subject: Subject, order: tuple[int, ...], folder: Path, loops: int | None = None) -> int:
    """A child that saves ``order``'s versions in turn (forever, or ``loops`` times) into ``folder``."""
    pid = os.fork()
    if pid:
        return pid
    code = _CRASHED
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        i = 0
        while loops is None or i < loops:
            subject.save(order[i % len(order)], folder)
            i += 1
        code = _SAVED
    except ArtifactError as e:  # a second writer refused in one clear line is an answer, not a failure
        code = _REFUSED if "\n" not in str(e) else _CRASHED
    except BaseException:  # noqa: BLE001  (a child must never return into the parent's code)
        code = _CRASHED
    finally:
        os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    """Exit code of child ``pid``, or None (after killing it) when it outlives ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _leftovers(folder: Path, keep: tuple[str, ...] = ()) -> tuple[int, int]:
    """(entries beside ``folder`` other than itself and those named in ``keep``, their bytes)."""
    entries = [p for p in folder.parent.iterdir() if p.name != folder.name and p.name not in keep]
    size = sum(
        f.lstat().st_size
        for p in entries
        for f in ([p] if not p.is_dir() else p.rglob("*"))
        if not f.is_dir()
    )
    return len(entries), size


def _named_leftovers(folder: Path, keep: tuple[str, ...] = ()) -> str:
    """What is left beside ``folder`` (with what each holds), for a trial's examples; empty when nothing."""
    entries = sorted(p for p in folder.parent.iterdir() if p.name != folder.name and p.name not in keep)
    return "; ".join(
        f"left behind: {p.name} ({', '.join(sorted(c.name for c in p.iterdir())) if p.is_dir() else 'file'})"
        for p in entries
    )


def _timed_save(subject: Subject, root: Path) -> float:
    start = time.perf_counter()
    subject.save(0, root / "timing" / subject.name)
    seconds = time.perf_counter() - start
    shutil.rmtree(root / "timing")
    return seconds


def _note(counts: dict, message: str) -> None:
    if message and len(counts["examples"]) < 3 and message not in counts["examples"]:
        counts["examples"].append(message)


def kill_trials(subject: Subject, root: Path, trials: int, replace: bool, fallback: bool = False) -> dict:
    """Kill a saving child ``trials`` times at random moments; classify what each kill left.

    ``replace`` saves over an existing save; otherwise into a new folder beside a previous save (as a
    training run writes each checkpoint next to the last good one), which must still load as it was,
    and nothing but the two folders may remain after the next save. With ``fallback`` the child swaps with two renames (as on systems without an atomic
    exchange), so some kills land between them and the next load must restore the artifact.
    """
    save_s = _timed_save(subject, root)
    counts: dict[str, Any] = dict.fromkeys(
        ("old", "new", "silent_wrong", "lost", "nothing_committed", "unclear_errors", "left_behind"), 0
    )
    counts.update(trials=trials, left_behind_bytes=0, save_s=round(save_s, 4), examples=[])
    rng = random.Random(f"{subject.name}-{replace}-{fallback}")
    for t in range(trials):
        folder = root / f"{subject.name}-{'replace' if replace else 'fresh'}-{int(fallback)}-{t}" / "item"
        folder.parent.mkdir(parents=True)
        previous = folder.parent / "previous"
        subject.save(0, folder if replace else previous)
        swap_supported = storage._swap_supported
        storage._swap_supported = swap_supported and not fallback  # the child inherits it
        try:
            pid = _fork_saver(subject, (1, 0), folder)
        finally:
            storage._swap_supported = swap_supported
        time.sleep(rng.uniform(0.0, 2.0 * save_s))
        _kill(pid)
        outcome, message = _outcome(subject, folder)
        if outcome in ("refused", "unclear") and not replace and not os.path.lexists(folder):
            outcome, message = "nothing_committed", ""
        outcome = {"refused": "lost", "other": "silent_wrong", "unclear": "unclear_errors"}.get(
            outcome, outcome
        )
        counts[outcome] += 1
        _note(counts, message)
        if not replace:
            kept, message = _outcome(subject, previous)
            counts["lost"] += int(kept != "old")
            _note(counts, message)
        subject.save(1, folder)  # the next save (a resumed run rewrites the checkpoint it lost)
        entries, size = _leftovers(folder, keep=(previous.name,))
        counts["left_behind"] += int(entries > 0)
        _note(counts, _named_leftovers(folder, keep=(previous.name,)))
        counts["left_behind_bytes"] += size
        shutil.rmtree(folder.parent)
    return counts


def race_trials(subject: Subject, root: Path, reads: int) -> dict:
    """Load ``reads`` times while a child saves the versions in turn; every load must be one whole save."""
    folder = root / f"{subject.name}-race" / "item"
    subject.save(0, folder)
    pid = _fork_saver(subject, (1, 0), folder)
    counts: dict[str, Any] = {"reads": reads, "old": 0, "new": 0, "silent_wrong": 0, "errors": 0}
    counts["examples"] = []
    try:
        for _ in range(reads):
            outcome, message = _outcome(subject, folder)
            counts[
                {"other": "silent_wrong", "refused": "errors", "unclear": "errors"}.get(outcome, outcome)
            ] += 1
            _note(counts, message)
    finally:
        _kill(pid)
    _outcome(subject, folder)  # the next load removes what the killed writer left
    counts["left_behind"] = _leftovers(folder)[0]
    shutil.rmtree(folder.parent)
    return counts


def writer_trials(subject: Subject, root: Path, rounds: int, saves: int = 5) -> dict:
    """Two children save into one new folder at once, ``rounds`` times.

    Each writer either succeeds or is refused in one clear line because the other is saving (a crash or
    a hang counts as a failed writer; both refused, as ``both_refused``); whatever is left loads as one
    whole save of a writer that succeeded, and no writer's folder stays behind.
    """
    timeout = 60.0 + 20 * saves * _timed_save(subject, root)
    counts: dict[str, Any] = dict.fromkeys(
        (
            "both_succeeded",
            "refused_writers",
            "both_refused",
            "failed_writers",
            "silent_wrong",
            "lost",
            "left_behind",
        ),
        0,
    )
    counts.update(rounds=rounds, examples=[])
    for r in range(rounds):
        folder = root / f"{subject.name}-writers-{r}" / "item"
        folder.parent.mkdir(parents=True)
        pids = [_fork_saver(subject, (0, 1), folder, saves), _fork_saver(subject, (1, 0), folder, saves)]
        codes = [_wait(pid, timeout) for pid in pids]
        counts["both_succeeded"] += int(codes == [_SAVED, _SAVED])
        counts["refused_writers"] += sum(code == _REFUSED for code in codes)
        counts["both_refused"] += int(codes == [_REFUSED, _REFUSED])
        counts["failed_writers"] += sum(code not in (_SAVED, _REFUSED) for code in codes)
        outcome, message = _outcome(subject, folder)
        if _SAVED in codes and outcome not in ("old", "new"):
            counts["silent_wrong" if outcome == "other" else "lost"] += 1
            _note(counts, message)
        counts["left_behind"] += int(_leftovers(folder)[0] > 0)
        _note(counts, _named_leftovers(folder))
        shutil.rmtree(folder.parent)
    return counts


def _damage_cases(folder: Path, donor: Path, structural: bool) -> list[tuple[str, str]]:
    """Every (relative path, damage) pair that applies to the saved folder."""
    cases = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        modes = FOLDER_DAMAGE if path.is_dir() else FILE_DAMAGE
        for mode in modes:
            if structural and mode not in STRUCTURAL_DAMAGE:
                continue
            if mode == "swap" and not _differs(path, donor / relative):
                continue
            cases.append((relative, mode))
    return cases


def _draw(every: list[tuple[str, str]], folder: Path, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` of the damage cases, taken in turn from each damage of files and of folders so that every
    damage is tried; the folders nearest the top (a whole Qdrant shard) come first, the files at random."""
    groups: dict[tuple[str, bool], list[tuple[str, str]]] = {}
    for case in every:
        groups.setdefault((case[1], (folder / case[0]).is_dir()), []).append(case)
    for (_, is_dir), group in groups.items():
        rng.shuffle(group)
        if is_dir:
            group.sort(key=lambda case: case[0].count("/"))
    queues = [groups[key] for key in sorted(groups)]
    chosen: list[tuple[str, str]] = []
    while len(chosen) < n:
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def _differs(path: Path, other: Path) -> bool:
    """Whether ``other`` exists and is not a byte-identical file or folder (a swap with it changes something)."""
    if not os.path.lexists(other):
        return False
    if path.is_dir() and other.is_dir():
        files = sorted(p.relative_to(path) for p in path.rglob("*"))
        if files != sorted(p.relative_to(other) for p in other.rglob("*")):
            return True
        return any(_differs(path / f, other / f) for f in files if (path / f).is_file())
    return not (path.is_file() and other.is_file() and filecmp.cmp(path, other, shallow=False))


def _damage(folder: Path, donor: Path, outside: Path, relative: str, mode: str, rng: random.Random) -> None:
    """Damage ``folder/relative``: ``swap`` and ``symlink`` bring in the other save's entry of that name
    (``symlink`` points at a copy outside the folder when the other save has none)."""
    target = folder / relative
    if mode == "flip":
        data = bytearray(target.read_bytes())
        if not data:
            data = bytearray(b"\0")
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(data))
    elif mode == "truncate":
        with open(target, "r+b") as f:
            f.truncate(target.stat().st_size // 2)
    elif mode == "append":
        with open(target, "ab") as f:
            f.write(b"\0" * 8)
    elif mode == "delete":
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    else:
        source = donor / relative
        if not os.path.lexists(source):
            source = outside / relative.replace("/", "_")
            (shutil.copytree if target.is_dir() else shutil.copy2)(target, source)
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        if mode == "swap":
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
        else:
            target.symlink_to(source.resolve(), target_is_directory=source.is_dir())


def damaged_load_trials(subject: Subject, root: Path, cases: int | None, verify: bool = True) -> dict:
    """Load copies of a save with one file or folder damaged each (at most ``cases`` of them, drawn with a
    fixed seed; None: all); each must be refused in one clear line or load exactly as saved.

    With ``verify=False`` only :data:`STRUCTURAL_DAMAGE` is tried (sizes and structure are always checked;
    a changed byte is what verification is for).
    """
    pristine, donor = root / f"{subject.name}-pristine" / "item", root / f"{subject.name}-donor" / "item"
    subject.save(0, pristine)
    subject.save(1, donor)
    donor_copy = root / f"{subject.name}-donor-copy"
    shutil.copytree(donor, donor_copy, symlinks=True)  # what loads may touch is never the donor itself
    every = _damage_cases(pristine, donor, structural=not verify)
    rng = random.Random(f"{subject.name}-damage-{verify}")
    chosen = every if cases is None or cases >= len(every) else _draw(every, pristine, cases, rng)
    counts: dict[str, Any] = dict.fromkeys(
        ("refused", "unchanged", "silent_wrong", "followed_symlink", "unclear_errors", "multi_line_errors"), 0
    )
    counts.update(damaged_loads=len(chosen), possible=len(every), examples=[])
    for i, (relative, mode) in enumerate(chosen):
        trial, outside = root / f"{subject.name}-damage-{i}", root / f"{subject.name}-outside-{i}"
        outside.mkdir()
        shutil.copytree(pristine.parent, trial, symlinks=True)
        _damage(trial / "item", donor_copy, outside, relative, mode, rng)
        outcome, message = _outcome(subject, trial / "item", verify=verify)
        if outcome == "refused":
            counts["multi_line_errors"] += int("\n" in message)
        elif outcome == "old":
            outcome = "followed_symlink" if mode == "symlink" else "unchanged"
        elif outcome != "unclear":
            outcome = "silent_wrong"
        key = "unclear_errors" if outcome == "unclear" else outcome
        counts[key] += 1
        if key not in ("refused", "unchanged"):
            _note(counts, f"{mode} {relative}: {key} {message}".strip())
        shutil.rmtree(trial)
        shutil.rmtree(outside)
    for folder in (pristine.parent, donor.parent, donor_copy):
        shutil.rmtree(folder)
    return counts


def run_reliability(
    trials: int = 20,
    read_trials: int = 40,
    writer_rounds: int = 10,
    damage_trials: int | None = 60,
    n_docs: int = 300,
    kinds: tuple[str, ...] | None = None,
    checkpoints: bool = True,
    out_dir: str | os.PathLike | None = None,
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run every trial for each index kind and for training checkpoints; save ``reliability.json`` (and
    ``reliability.cases.csv``) under ``out_dir`` when given.

    Parameters
    ----------
    trials : int
        Kills per case: saving over an existing save, saving into a new folder, and (for the first kind)
        with the two-rename fallback swap.
    read_trials : int
        Loads racing a writer, per index kind.
    writer_rounds : int
        Rounds of two concurrent writers, per index kind.
    damage_trials : int or None
        Damaged loads per kind and checkpoint (one file or folder damaged each), with and without
        verification; None tries every file with every damage.
    n_docs : int
        Documents of each synthetic index.
    kinds : tuple of str, optional
        Index kinds to try; every registered kind (:func:`lirlab.index.registry.kind_names`) by default.
    checkpoints : bool
        Also try training checkpoints (kills during a write and damaged files).
    out_dir, workdir : path, optional
        Where the results are written (nothing is written without it) and where the trials run (a
        temporary folder inside it, removed at the end).
    """
    if not hasattr(os, "fork"):
        raise RuntimeError("the reliability trials need os.fork (POSIX)")
    from lirlab.index.registry import kind_names

    kinds = kind_names() if kinds is None else tuple(kinds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a forked child must not inherit a busy thread pool
    root = Path(tempfile.mkdtemp(prefix="lirlab-reliability-", dir=workdir))
    cases: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record(subject: Subject, case: str, counts: dict) -> None:
        cases.append({"kind": subject.name, "case": case} | counts)

    try:
        queries = _encoding(4, seed=99, prefix="q", kind="query")
        subjects = [_index_subject(kind, n_docs, queries) for kind in kinds]
        if checkpoints:
            subjects.append(_checkpoint_subject(root / "encoders"))
        for subject in subjects:
            if subject.signatures[0] == subject.signatures[1]:
                raise RuntimeError(f"{subject.name}: the two saves must differ, or a mix could not be seen")
            is_index = subject.name != "checkpoint"
            if is_index:
                record(subject, "kill -9 while replacing", kill_trials(subject, root, trials, replace=True))
            record(subject, "kill -9 during a first save", kill_trials(subject, root, trials, replace=False))
            if subject is subjects[0]:
                record(
                    subject,
                    "kill -9 while replacing, two-rename fallback swap",
                    kill_trials(subject, root, trials, replace=True, fallback=True),
                )
            record(subject, "damaged file, verify=True", damaged_load_trials(subject, root, damage_trials))
            record(
                subject,
                "damaged file size or presence, verify=False",
                damaged_load_trials(subject, root, damage_trials, verify=False),
            )
            if is_index:
                record(subject, "reader racing a writer", race_trials(subject, root, read_trials))
                record(subject, "two writers at once", writer_trials(subject, root, writer_rounds))
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(root, ignore_errors=True)
    report = {
        "settings": {
            "trials": trials,
            "read_trials": read_trials,
            "writer_rounds": writer_rounds,
            "damage_trials": damage_trials,
            "n_docs": n_docs,
            "kinds": list(kinds),
            "checkpoints": checkpoints,
        },
        "cases": cases,
        "totals": totals(cases),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if out_dir is not None:
        from lirlab.bench.record import load_average, save_results

        report["load_average"] = load_average()
        report["path"] = str(save_results("reliability", report, out_dir))
    return report


def totals(cases: list[dict[str, Any]]) -> dict[str, int]:
    """The counts over all cases; those named in :data:`FAILURES` must be 0."""

    def total(key: str) -> int:
        return sum(c.get(key, 0) for c in cases)

    return {
        "silent_wrong": total("silent_wrong"),
        "lost": total("lost"),
        "left_behind": total("left_behind"),
        "unclear_errors": total("unclear_errors"),
        "followed_symlink": total("followed_symlink"),
        "failed_writers": total("failed_writers"),
        "both_refused": total("both_refused"),
        "multi_line_errors": total("multi_line_errors"),
        "read_errors": total("errors"),
        "refused_writers": total("refused_writers"),
        "kills": total("trials"),
        "damaged_loads": total("damaged_loads"),
        "racing_reads": total("reads"),
    }


#: The totals that must be 0 for the promises to hold.
FAILURES = (
    "silent_wrong",
    "lost",
    "left_behind",
    "unclear_errors",
    "followed_symlink",
    "failed_writers",
    "both_refused",
    "multi_line_errors",
)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m lirlab.bench.reliability", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument("--trials", type=int, default=20, help="kills per case (default 20)")
    parser.add_argument(
        "--read-trials", type=int, default=40, help="racing loads per index kind (default 40)"
    )
    parser.add_argument(
        "--writer-rounds", type=int, default=10, help="two-writer rounds per kind (default 10)"
    )
    parser.add_argument(
        "--damage-trials",
        type=int,
        default=60,
        help="damaged loads per kind, with and without verification (default 60; 0: every file, every damage)",
    )
    parser.add_argument("--docs", type=int, default=300, help="documents of each index (default 300)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for reliability.json")
    args = parser.parse_args(argv)
    report = run_reliability(
        args.trials,
        args.read_trials,
        args.writer_rounds,
        args.damage_trials or None,
        args.docs,
        out_dir=args.out,
    )
    for case in report["cases"]:
        print(json.dumps(case))
    print(json.dumps(report["totals"]))
    return 1 if any(report["totals"][key] for key in FAILURES) else 0


if __name__ == "__main__":
    raise SystemExit(main())
