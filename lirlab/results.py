"""The run contract shared by every search: a DataFrame ``qid, query, docno, score, rank``, and the
TREC run files and TSV tables it is read from and written to (this module is the one place that does).

Examples
--------
>>> import torch
>>> hits = [(torch.tensor([1, 0]), torch.tensor([2.5, 1.0]))]
>>> run_frame(["q1"], ["cats"], hits, ["d0", "d1"])
  qid query docno  score  rank
0  q1  cats    d1    2.5     1
1  q1  cats    d0    1.0     2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # reading and writing runs needs no torch (``lirlab evaluate`` loads none)
    import torch

RUN_COLUMNS = ["qid", "query", "docno", "score", "rank"]


def run_frame(
    qids: Sequence[str],
    query_texts: Sequence[str],
    hits: Sequence[tuple[torch.Tensor, torch.Tensor]],
    docnos: Sequence[str],
) -> pd.DataFrame:
    """Build a run from per-query ``(doc positions, scores)`` pairs, best first; ranks start at 1."""
    rows_qid, rows_query, rows_docno, rows_score, rows_rank = [], [], [], [], []
    docno_array = np.asarray(docnos, dtype=object)
    for qid, text, (positions, scores) in zip(qids, query_texts, hits):
        positions = positions.cpu().numpy()
        n = len(positions)
        rows_qid.extend([qid] * n)
        rows_query.extend([text] * n)
        rows_docno.extend(docno_array[positions].tolist())
        rows_score.extend(scores.float().cpu().tolist())
        rows_rank.extend(range(1, n + 1))
    return pd.DataFrame(
        {
            "qid": pd.Series(rows_qid, dtype=object),
            "query": pd.Series(rows_query, dtype=object),
            "docno": pd.Series(rows_docno, dtype=object),
            "score": np.asarray(rows_score, dtype=np.float64),
            "rank": np.asarray(rows_rank, dtype=np.int64),
        },
        columns=RUN_COLUMNS,
    )


#: Formats :func:`write_run` writes: TREC run files (what trec_eval and the ir_measures CLI read) and a
#: tab-separated table with a header (what a spreadsheet reads).
RUN_FORMATS = ("trec", "tsv")


def check_run(run: pd.DataFrame) -> pd.DataFrame:
    """``run`` if it holds the run columns (``query`` may be missing), else a ``ValueError`` naming
    what is missing.

    >>> check_run(pd.DataFrame({"qid": ["1"], "docno": ["d"]}))
    Traceback (most recent call last):
    ...
    ValueError: the run lacks column(s) rank, score; a run has qid, query, docno, score, rank
    """
    if not isinstance(run, pd.DataFrame):
        raise ValueError(f"a run is a DataFrame with {', '.join(RUN_COLUMNS)}, got {type(run).__name__}")
    missing = sorted({"qid", "docno", "score", "rank"} - set(run.columns))
    if missing:
        raise ValueError(f"the run lacks column(s) {', '.join(missing)}; a run has {', '.join(RUN_COLUMNS)}")
    return run


def write_run(run: pd.DataFrame, path, format: str = "trec", tag: str = "lirlab") -> None:
    """Write ``run`` to ``path`` (a file name, or an open text file such as ``sys.stdout``).

    ``format="trec"`` writes ``qid Q0 docno rank score tag`` lines; ``"tsv"`` the columns with a header.

    >>> import io
    >>> out = io.StringIO()
    >>> write_run(pd.DataFrame({"qid": ["1"], "query": ["q"], "docno": ["d7"], "score": [2.5], "rank": [1]}), out)
    >>> out.getvalue()
    '1 Q0 d7 1 2.5 lirlab\\n'
    """
    check_run(run)
    if format not in RUN_FORMATS:
        raise ValueError(f"run format must be one of {', '.join(RUN_FORMATS)}, got {format!r}")
    if format == "trec":
        if not tag or any(c.isspace() for c in tag):
            raise ValueError(f"a TREC run tag is one word, got {tag!r}")
        bad = [
            d
            for d in run.docno.astype(str).tolist() + run.qid.astype(str).tolist()
            if not d or any(c.isspace() for c in d)
        ]
        if bad:
            raise ValueError(
                f"TREC run files cannot hold ids with spaces, such as {bad[0]!r}: write format='tsv'"
            )
        text = "".join(
            f"{q} Q0 {d} {int(r)} {float(s)!r} {tag}\n"
            for q, d, r, s in zip(run.qid.astype(str), run.docno.astype(str), run["rank"], run.score)
        )
    else:
        text = run.to_csv(sep="\t", index=False)
    if hasattr(path, "write"):
        path.write(text)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def read_run(path) -> pd.DataFrame:
    """A run from a TREC run file (``qid Q0 docno rank score tag``) or a TSV written by :func:`write_run`.

    Errors name the file, the line and what was expected. The ``query`` column is empty for TREC files
    (they do not store query texts).
    """
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{path}: no such run file")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(
            f"{path}: not a text file; expected a TREC run (qid Q0 docno rank score tag)"
        ) from None
    if lines and lines[0].startswith("qid\t"):
        header = lines[0].split("\t")
        missing = sorted({"qid", "docno", "score", "rank"} - set(header))
        if missing:
            raise ValueError(f"{path}, line 1: the header lacks {', '.join(missing)}")
        frame = pd.read_csv(
            file, sep="\t", dtype={"qid": str, "docno": str, "query": str}, keep_default_na=False
        )
        try:
            frame = frame.astype({"score": float, "rank": int})
        except ValueError:
            raise ValueError(f"{path}: score and rank must be numbers") from None
        if "query" not in frame.columns:
            frame.insert(1, "query", "")
        return frame[RUN_COLUMNS]
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise ValueError(
                f"{path}, line {number}: {len(parts)} fields; a TREC run line is 'qid Q0 docno rank score tag'"
            )
        try:
            rows.append((parts[0], parts[2], float(parts[4]), int(parts[3])))
        except ValueError:
            raise ValueError(
                f"{path}, line {number}: rank must be a whole number and score a number"
            ) from None
    frame = pd.DataFrame(rows, columns=["qid", "docno", "score", "rank"])
    frame.insert(1, "query", "")
    return frame[RUN_COLUMNS].astype({"qid": object, "docno": object})
