"""Reliability trials of index saves: kill -9 at random moments, readers racing writers, two writers at once.

Each trial checks the three promises of :mod:`lirlab.storage`:

* **never silently wrong**: whatever loads is exactly one of the saves (its ids and its search results
  on fixed queries equal those of the old or the new index, never a mix of two saves);
* **never lost**: an index that existed before a killed save still loads (``verify=True``);
* **nothing left behind**: after the next load, no writer's folder remains beside the index.

Writers are forked children (``os.fork``, so the index is built once; torch runs single-threaded so a
fork is safe) that save in a loop and are killed with ``SIGKILL`` after a random delay drawn over about
two save durations, so kills land in every phase: writing arrays, fsync, the swap, deleting the old copy.
POSIX only.

Examples
--------
>>> report = run_reliability(trials=1, read_trials=2, writer_rounds=1, n_docs=20, kinds=("flat",))
>>> report["totals"]["silent_wrong"], report["totals"]["lost"], report["totals"]["left_behind"]
(0, 0, 0)
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from lirlab import storage
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.storage import ArtifactError, clean_leftovers


def _encoding(n_docs: int, seed: int, prefix: str, dim: int = 64, kind: str = "document") -> Encoding:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 40, (n_docs,), generator=g)
    total = int(lengths.sum())
    return Encoding(
        ids=tuple(f"{prefix}{i}" for i in range(n_docs)),
        vectors=torch.nn.functional.normalize(torch.randn(total, dim, generator=g), dim=1),
        token_ids=torch.randint(0, 50, (total,), generator=g),
        offsets=offsets_from_lengths(lengths),
        vocab=tuple(f"t{i}" for i in range(50)),
        kind=kind,
    )


def _build(kind: str, docs: Encoding):
    from lirlab.index.base import index_kind

    cls = index_kind(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "plaid":
            return cls.from_encoding(docs, n_centroids=64, nbits=2)
        return cls.from_encoding(docs)


def _signature(index, queries: Encoding) -> tuple:
    """What identifies one save: its ids and its exact results on fixed queries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hits = index.search_encoded(queries, k=10)
    return tuple(index.docnos), tuple((tuple(p.tolist()), tuple(s.tolist())) for p, s in hits)


def _load(kind: str, folder: Path):
    from lirlab.index.base import index_kind

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return index_kind(kind).load(folder, verify=True)


def _fork_saver(versions: list, folder: Path, loops: int | None = None, fallback: bool = False) -> int:
    """A child that saves the versions in turn (forever, or ``loops`` times) into ``folder``."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if fallback:
            storage._swap_supported = False
        i = 0
        while loops is None or i < loops:
            versions[(i + 1) % len(versions)].save(folder)
            i += 1
        code = 0
    except BaseException:  # noqa: BLE001  (a child must never return into the parent's code)
        code = 2
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


def _leftovers(folder: Path) -> tuple[int, int]:
    """(entries beside ``folder`` other than itself, their bytes)."""
    entries = [p for p in folder.parent.iterdir() if p.name != folder.name]
    size = sum(
        f.stat().st_size for p in entries for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()
    )
    return len(entries), size


def _classify(kind: str, folder: Path, signatures: list[tuple], queries, existed: bool) -> str:
    """``"old"``, ``"new"``, ``"silent_wrong"``, ``"lost"`` or ``"nothing_committed"`` for the state at ``folder``."""
    try:
        index = _load(kind, folder)
    except ArtifactError as e:
        if not existed and "no such index folder" in str(e):
            return "nothing_committed"
        return "lost"
    signature = _signature(index, queries)
    return "old" if signature == signatures[0] else "new" if signature == signatures[1] else "silent_wrong"


def kill_trials(
    kind: str,
    versions: list,
    signatures: list,
    queries,
    root: Path,
    trials: int,
    replace: bool,
    fallback: bool = False,
):
    """Kill a saving child ``trials`` times at random moments; classify what each kill left.

    With ``fallback`` the child swaps with two renames (as on systems without an atomic exchange), so
    some kills land between them and the next load must restore the index.
    """
    start = time.perf_counter()
    versions[0].save(root / "timing" / "idx")
    save_s = time.perf_counter() - start
    shutil.rmtree(root / "timing")
    counts = {"trials": trials, "old": 0, "new": 0, "silent_wrong": 0, "lost": 0, "nothing_committed": 0}
    counts.update(left_behind=0, left_behind_bytes=0, save_s=round(save_s, 4))
    rng = random.Random(f"{kind}-{replace}-{fallback}")
    for t in range(trials):
        folder = root / f"{kind}-{'replace' if replace else 'fresh'}-{int(fallback)}-{t}" / "idx"
        folder.parent.mkdir(parents=True)
        if replace:
            versions[0].save(folder)
        pid = _fork_saver(versions, folder, fallback=fallback)
        time.sleep(rng.uniform(0.0, 2.0 * save_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        counts[_classify(kind, folder, signatures, queries, existed=replace)] += 1
        clean_leftovers(folder)  # what the load did already, and what a save in a fresh folder does
        entries, size = _leftovers(folder)
        counts["left_behind"] += int(entries > 0)
        counts["left_behind_bytes"] += size
        shutil.rmtree(folder.parent)
    return counts


def race_trials(kind: str, versions: list, signatures: list, queries, root: Path, reads: int):
    """Load ``reads`` times while a child saves the versions in turn; every load must be one whole save."""
    folder = root / f"{kind}-race" / "idx"
    versions[0].save(folder)
    pid = _fork_saver(versions, folder)
    counts = {"reads": reads, "old": 0, "new": 0, "silent_wrong": 0, "errors": 0}
    try:
        for _ in range(reads):
            try:
                index = _load(kind, folder)
            except ArtifactError:
                counts["errors"] += 1
                continue
            signature = _signature(index, queries)
            counts[
                "old"
                if signature == signatures[0]
                else "new"
                if signature == signatures[1]
                else "silent_wrong"
            ] += 1
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    clean_leftovers(folder)
    counts["left_behind"] = _leftovers(folder)[0]
    shutil.rmtree(folder.parent)
    return counts


def writer_trials(
    kind: str, versions: list, signatures: list, queries, root: Path, rounds: int, saves: int = 5
):
    """Two children save into one folder at once, ``rounds`` times: both must succeed, one whole save wins."""
    counts = {"rounds": rounds, "both_succeeded": 0, "failed_writers": 0, "silent_wrong": 0, "left_behind": 0}
    for r in range(rounds):
        folder = root / f"{kind}-writers-{r}" / "idx"
        folder.parent.mkdir(parents=True)
        pids = [_fork_saver(versions, folder, loops=saves), _fork_saver(versions[::-1], folder, loops=saves)]
        codes = [_wait(pid, timeout=120) for pid in pids]
        counts["both_succeeded"] += int(codes == [0, 0])
        counts["failed_writers"] += sum(code != 0 for code in codes)
        outcome = _classify(kind, folder, signatures, queries, existed=True)
        counts["silent_wrong"] += int(outcome not in ("old", "new"))
        counts["left_behind"] += int(_leftovers(folder)[0] > 0)
        shutil.rmtree(folder.parent)
    return counts


def run_reliability(
    trials: int = 30,
    read_trials: int = 40,
    writer_rounds: int = 10,
    n_docs: int = 600,
    kinds: tuple[str, ...] = ("flat", "plaid"),
    out_dir: str | os.PathLike | None = None,
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run every trial for each index kind; save ``reliability.json`` under ``out_dir`` when given.

    ``trials`` kills per case (each kind, replacing an index and saving a fresh one), ``read_trials``
    loads racing a writer and ``writer_rounds`` rounds of two concurrent writers per kind.
    """
    if not hasattr(os, "fork"):
        raise RuntimeError("the reliability trials need os.fork (POSIX)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a forked child must not inherit a busy thread pool
    root = Path(tempfile.mkdtemp(prefix="lirlab-reliability-", dir=workdir))
    cases: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        queries = _encoding(4, seed=99, prefix="q", kind="query")
        for kind in kinds:
            versions = [
                _build(kind, _encoding(n_docs, seed, prefix)) for seed, prefix in ((1, "old"), (2, "new"))
            ]
            signatures = [_signature(v, queries) for v in versions]
            if signatures[0] == signatures[1]:
                raise RuntimeError("the two saves of a trial must differ, or a torn read could not be seen")
            for replace in (True, False):
                cases.append(
                    {
                        "kind": kind,
                        "case": "kill -9 while replacing" if replace else "kill -9 during a first save",
                    }
                    | kill_trials(kind, versions, signatures, queries, root, trials, replace)
                )
            if kind == kinds[0]:
                cases.append(
                    {"kind": kind, "case": "kill -9 while replacing, two-rename fallback swap"}
                    | kill_trials(kind, versions, signatures, queries, root, trials, True, fallback=True)
                )
            cases.append(
                {"kind": kind, "case": "reader racing a writer"}
                | race_trials(kind, versions, signatures, queries, root, read_trials)
            )
            cases.append(
                {"kind": kind, "case": "two writers at once"}
                | writer_trials(kind, versions, signatures, queries, root, writer_rounds)
            )
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(root, ignore_errors=True)
    totals = {
        "silent_wrong": sum(c.get("silent_wrong", 0) for c in cases),
        "lost": sum(c.get("lost", 0) for c in cases),
        "left_behind": sum(c.get("left_behind", 0) for c in cases),
        "read_errors": sum(c.get("errors", 0) for c in cases),
        "failed_writers": sum(c.get("failed_writers", 0) for c in cases),
        "kills": sum(c.get("trials", 0) for c in cases),
        "racing_reads": sum(c.get("reads", 0) for c in cases),
    }
    report = {
        "settings": {
            "trials": trials,
            "read_trials": read_trials,
            "writer_rounds": writer_rounds,
            "n_docs": n_docs,
        },
        "cases": cases,
        "totals": totals,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if out_dir is not None:
        from lirlab.bench.record import save_results

        report["path"] = str(save_results("reliability", report, out_dir))
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m lirlab.bench.reliability", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--trials", type=int, default=30, help="kills per case (default 30)")
    parser.add_argument(
        "--read-trials", type=int, default=40, help="racing loads per index kind (default 40)"
    )
    parser.add_argument(
        "--writer-rounds", type=int, default=10, help="two-writer rounds per kind (default 10)"
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for reliability.json")
    args = parser.parse_args(argv)
    report = run_reliability(args.trials, args.read_trials, args.writer_rounds, out_dir=args.out)
    for case in report["cases"]:
        print(json.dumps(case))
    print(json.dumps(report["totals"]))
    return (
        0
        if not (
            report["totals"]["silent_wrong"] or report["totals"]["lost"] or report["totals"]["left_behind"]
        )
        else 1
    )


if __name__ == "__main__":
    raise SystemExit(main())
