"""Corpora, queries and relevance judgments.

Three sources, one record type (:class:`Dataset`):

* ``"demo"``: the small collection shipped inside the package (``lirlab/demo_corpus``), so it is there
  in a wheel install too;
* a local BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``);
* an ir_datasets id such as ``"beir/scifact/test"`` (downloaded by ir_datasets on first use).

Page-image collections (``"demo-pages"``, page folders, ViDoRe sets) come back as the same
:class:`Dataset`, their documents :class:`lirlab.page_data.Page` records (see :mod:`lirlab.page_data`).

Examples
--------
>>> ds = load("demo")
>>> ds.name, len(ds.docs) > 100, len(ds.queries) > 10
('demo', True, True)
>>> list(ds.qrels.columns)
['query_id', 'doc_id', 'relevance']
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lirlab.storage import as_path

DEMO_DIR = Path(__file__).resolve().parent / "demo_corpus"
QRELS_COLUMNS = ["query_id", "doc_id", "relevance"]


class Document(NamedTuple):
    """One document: its id, body text and optional title."""

    docno: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """Title and body joined by a space: what gets encoded."""
        return f"{self.title} {self.text}" if self.title else self.text


class Query(NamedTuple):
    """One query: its id and text."""

    qid: str
    text: str


@dataclass(frozen=True)
class Dataset:
    """A test collection: documents, queries and graded qrels (ir_measures column names)."""

    name: str
    docs: tuple[Document, ...]
    queries: tuple[Query, ...]
    qrels: pd.DataFrame

    def __post_init__(self):
        check_unique([d.docno for d in self.docs], "document id")
        check_unique([q.qid for q in self.queries], "query id")

    def head(self, n_queries: int) -> Dataset:
        """The same collection with only the first ``n_queries`` queries (and their qrels)."""
        queries = self.queries[:n_queries]
        keep = {q.qid for q in queries}
        return Dataset(self.name, self.docs, queries, self.qrels[self.qrels.query_id.isin(keep)])

    def slice(self, max_queries: int | None = None, max_docs: int | None = None) -> Dataset:
        """A smaller collection for quick runs: the first ``max_queries`` queries and about ``max_docs`` documents.

        Every document judged for a kept query stays, so the qrels still make sense; the rest of
        ``max_docs`` is filled with the other documents in corpus order. Scores on a slice are higher
        than on the full corpus (fewer distractors): use it to try a pipeline, not to report numbers.

        Examples
        --------
        >>> small = load("demo").slice(max_queries=3, max_docs=40)
        >>> len(small.queries), len(small.docs)
        (3, 40)
        >>> set(small.qrels.doc_id) <= {d.docno for d in small.docs}
        True
        """
        for value, what in ((max_queries, "max_queries"), (max_docs, "max_docs")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{what} must be a positive whole number or None, got {value!r}")
        sliced = self.head(len(self.queries) if max_queries is None else max_queries)
        if max_docs is None:
            return sliced
        judged = set(sliced.qrels.doc_id)
        room = max(max_docs - sum(d.docno in judged for d in self.docs), 0)
        docs = []
        for d in self.docs:
            if d.docno in judged:
                docs.append(d)
            elif room:
                docs.append(d)
                room -= 1
        return Dataset(self.name, tuple(docs), sliced.queries, sliced.qrels)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {len(self.docs)} docs, {len(self.queries)} queries, "
            f"{len(self.qrels)} judgments)"
        )


def check_unique(ids: Sequence[str], what: str) -> None:
    """Raise ``ValueError`` naming the first repeated id."""
    seen = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} {i!r}")
        seen.add(i)


def load(source: str | Path, split: str = "test") -> Dataset:
    """Load ``"demo"``, ``"demo-pages"``, a BEIR folder (text or page images, see
    :mod:`lirlab.page_data`), a ViDoRe set on the Hugging Face hub (``"vidore/<name>_beir"``), or an
    ir_datasets id.

    Raises
    ------
    FileNotFoundError
        A folder was named but lacks the BEIR files.
    ValueError
        The name is neither a folder nor a known ir_datasets id, or cannot be a path at all.
    """
    path = as_path(source, "dataset").expanduser()
    if str(source) == "demo":
        return load_beir(DEMO_DIR, split="test", name="demo")
    if str(source) == "demo-pages":
        from lirlab.page_data import DEMO_PAGES_DIR

        return load_beir(DEMO_PAGES_DIR, split="test", name="demo-pages")
    if str(source).startswith("vidore/") and not path.exists():
        return load_vidore(str(source), split=split)
    if path.is_dir():
        return load_beir(path, split=split)
    if path.suffix or str(source).startswith((".", "/", "~")):
        raise FileNotFoundError(f"no dataset folder at {path}")
    return load_ir_datasets(str(source))


def load_beir(folder: str | Path, split: str = "test", name: str | None = None) -> Dataset:
    """Load a BEIR-layout folder; queries are restricted to those judged in ``qrels/<split>.tsv``."""
    folder = as_path(folder, "BEIR folder")
    from lirlab import page_data

    if any((folder / "corpus").glob("*.parquet")):
        return load_vidore_folder(folder, split=split, name=name)
    if page_data.is_page_folder(folder):
        return load_pages(folder, split=split, name=name)
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    judged = set(qrels.query_id)
    docs = tuple(
        Document(
            _field(d, "_id", file, line), _text(d, "text", file, line, ""), _text(d, "title", file, line, "")
        )
        for (file, line), d in _numbered_jsonl(folder / "corpus.jsonl")
    )
    if not docs:
        raise ValueError(
            f"{folder / 'corpus.jsonl'}: holds no documents; a BEIR corpus has one JSON object per line"
        )
    queries = tuple(
        Query(_field(q, "_id", file, line), _text(q, "text", file, line, None))
        for (file, line), q in _numbered_jsonl(folder / "queries.jsonl")
        if _field(q, "_id", file, line) in judged
    )
    return Dataset(name or folder.name, docs, queries, qrels)


def load_pages(folder: str | Path, split: str = "test", name: str | None = None) -> Dataset:
    """Load a page folder (corpus rows naming an ``image``, or a ``pdf`` and its ``page``: see
    :mod:`lirlab.page_data`); its documents are :class:`~lirlab.page_data.Page` records and its queries
    those judged in ``qrels/<split>.tsv``.

    Raises
    ------
    FileNotFoundError
        A file the folder needs, or an image a row names, is missing.
    ValueError
        A row is malformed, names a path outside the folder, or a PDF page the PDF lacks.
    """
    from lirlab.page_data import OpenPdfs, page_from_row

    folder = as_path(folder, "page folder")
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    root = folder.resolve()
    with OpenPdfs() as pdfs:
        docs = tuple(
            page_from_row(
                d,
                _field(d, "_id", file, line),
                root,
                f"{file}:{line}",
                pdfs,
                title=_text(d, "title", file, line, ""),
                text=None if "text" not in d else _text(d, "text", file, line, None),
            )
            for (file, line), d in _numbered_jsonl(folder / "corpus.jsonl")
        )
    if not docs:
        raise ValueError(f"{folder / 'corpus.jsonl'}: holds no pages")
    judged = set(qrels.query_id)
    queries = tuple(
        Query(_field(q, "_id", file, line), _text(q, "text", file, line, None))
        for (file, line), q in _numbered_jsonl(folder / "queries.jsonl")
        if _field(q, "_id", file, line) in judged
    )
    return Dataset(name or folder.name, docs, queries, qrels)


def load_vidore(repo_id: str, split: str = "test", revision: str | None = None) -> Dataset:
    """Load a ViDoRe BEIR-format set from the Hugging Face hub (``"vidore/<name>_beir"``), downloaded on
    first use (:func:`lirlab.page_data.download_vidore`: one ``RuntimeError`` line offline)."""
    from lirlab.page_data import download_vidore

    return load_vidore_folder(download_vidore(repo_id, split, revision), split=split, name=repo_id)


def load_vidore_folder(folder: str | Path, split: str = "test", name: str | None = None) -> Dataset:
    """Load a ViDoRe BEIR set from a local copy of its hub folder (``corpus/``, ``queries/``, ``qrels/``
    holding ``<split>-*.parquet``); queries are restricted to the judged ones."""
    from lirlab.page_data import read_vidore

    folder = as_path(folder, "ViDoRe folder")
    pages, queries, judgments = read_vidore(folder, split)
    qrels = pd.DataFrame(judgments, columns=QRELS_COLUMNS)
    judged = set(qrels.query_id)
    return Dataset(
        name or folder.name, tuple(pages), tuple(Query(q, t) for q, t in queries if q in judged), qrels
    )


def read_qrels(qrels_file: Path) -> pd.DataFrame:
    """A BEIR ``qrels/<split>.tsv`` file (header line, then query-id, corpus-id, score) as a DataFrame
    with :data:`QRELS_COLUMNS`; errors name the file and line."""
    if not qrels_file.is_file():
        available = sorted(p.stem for p in qrels_file.parent.glob("*.tsv"))
        raise FileNotFoundError(f"{qrels_file}: missing; splits here: {available or 'none'}")
    rows = []
    with open(qrels_file, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or len(header) < 3:
            raise ValueError(
                f"{qrels_file}, line 1: expected the header 'query-id<TAB>corpus-id<TAB>score' (3 tab-separated "
                f"columns), got {len(header or [])} column(s)"
            )
        for line_no, r in enumerate(reader, 2):
            if not r:
                continue
            if len(r) < 3:
                raise ValueError(
                    f"{qrels_file}, line {line_no}: {len(r)} column(s); each line needs query-id, corpus-id and "
                    "score separated by tabs"
                )
            try:
                rows.append((r[0].strip(), r[1].strip(), int(r[2])))
            except ValueError:
                raise ValueError(
                    f"{qrels_file}, line {line_no}: score {r[2]!r} is not a whole number (a relevance grade)"
                ) from None
    return pd.DataFrame(rows, columns=QRELS_COLUMNS)


def _numbered_jsonl(path: Path):
    """``((path, line), record)`` for each JSON object of a JSON-lines file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a BEIR folder needs corpus.jsonl, queries.jsonl, qrels/)")
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(
                    f"{path}:{line_no}: expected a JSON object with _id and text, got {type(record).__name__}"
                )
            yield (path, line_no), record


def _field(record: dict, key: str, path: Path, line: int) -> str:
    value = record.get(key)
    if value is None or isinstance(value, (dict, list)) or str(value) == "":
        raise ValueError(
            f"{path}:{line}: the record has no {key!r} (each line needs an {key!r} and a 'text')"
        )
    return str(value)


def _text(record: dict, key: str, path: Path, line: int, default: str | None) -> str:
    value = record.get(key, default)
    if value is None and default is not None:
        value = default
    if value is None:
        raise ValueError(f"{path}:{line}: the record has no {key!r}")
    if not isinstance(value, str):
        raise ValueError(f"{path}:{line}: {key!r} must be a string, got {type(value).__name__}")
    return value


#: How a failed ir_datasets download is reported: what happened, then how to work without internet.
OFFLINE_HINT = (
    "without internet, load a local BEIR folder instead (one holding corpus.jsonl, queries.jsonl and "
    "qrels/test.tsv): DATASET = 'path/to/scifact' in a notebook, --dataset path/to/scifact on the command line"
)


def _short_cause(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if any(
        s in text
        for s in ("NameResolution", "Max retries exceeded", "Failed to resolve", "Network is unreachable")
    ):
        return "the download failed: no network connection"
    return f"{type(error).__name__}: {text[:160]}{'…' if len(text) > 160 else ''}"


def load_ir_datasets(dataset_id: str) -> Dataset:
    """Load an ir_datasets id (documents, queries and qrels must all be provided by it).

    ir_datasets' own log lines and progress bars are held back while it reads (one line on standard
    error says that the dataset is being fetched); when the download fails, one :class:`RuntimeError`
    says why and how to use a local BEIR folder instead.
    """
    import contextlib
    import io
    import sys

    import ir_datasets

    try:
        dataset = ir_datasets.load(dataset_id)
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset_id!r}: not 'demo', not a folder, not an ir_datasets id "
            "(see https://ir-datasets.com, e.g. 'beir/scifact/test')"
        ) from None
    for part in ("docs", "queries", "qrels"):
        if not getattr(dataset, f"has_{part}")():
            raise ValueError(f"ir_datasets id {dataset_id!r} provides no {part}")
    print(f"lirlab: reading {dataset_id} with ir_datasets (the first use downloads it)", file=sys.stderr)
    held_back = io.StringIO()
    try:
        with contextlib.redirect_stderr(held_back):
            docs = tuple(
                Document(
                    d.doc_id,
                    getattr(d, "text", "") or getattr(d, "default_text", lambda: "")(),
                    getattr(d, "title", "") or "",
                )
                for d in dataset.docs_iter()
            )
            queries = tuple(
                Query(q.query_id, getattr(q, "text", None) or q.default_text())
                for q in dataset.queries_iter()
            )
            qrels = pd.DataFrame(
                [(q.query_id, q.doc_id, int(q.relevance)) for q in dataset.qrels_iter()],
                columns=QRELS_COLUMNS,
            )
    except Exception as e:  # network and cache errors come from many layers of ir_datasets
        raise RuntimeError(
            f"ir_datasets could not fetch {dataset_id!r} ({_short_cause(e)}); {OFFLINE_HINT}"
        ) from None
    judged = set(qrels.query_id)
    return Dataset(dataset_id, docs, tuple(q for q in queries if q.qid in judged), qrels)


#: Column names accepted for a document DataFrame's ids, in order of preference (lirlab, PyTerrier,
#: ir_datasets, BEIR).
DOCNO_COLUMNS = ("docno", "doc_id", "docid", "_id")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str, what: str) -> str:
    r"""``text`` with lone surrogates (what Python makes of undecodable bytes, e.g. on a command line)
    replaced by U+FFFD, with one :class:`UnicodeWarning` naming ``what``.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     clean_text("caf\udce9 au lait", "query '1'")
    'caf� au lait'
    """
    if not _SURROGATE.search(text):
        return text
    warnings.warn(
        f"{what} holds bytes that are not valid UTF-8 (lone surrogates); they were replaced by U+FFFD",
        UnicodeWarning,
        stacklevel=3,
    )
    return _SURROGATE.sub("\ufffd", text)


def _id_text(value: Any, what: str, record: bool) -> str:
    """An id as text: a record's id must be a ``str``; a mapping key or a DataFrame cell may also be a
    whole number (written as digits). ``None``, floats (a missing cell is NaN), bytes and the rest are
    refused: ``str()`` would make ``"None"`` or ``"nan"`` an id."""
    if isinstance(value, str):
        return _check_id(value, what)
    whole = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if record or not whole:
        raise ValueError(
            f"{what} id {value!r:.40} is a {type(value).__name__}, not text: give every {what} a string id "
            "(e.g. str(n))"
        )
    return str(value)


def _check_id(value: str, what: str) -> str:
    if _SURROGATE.search(value):
        raise ValueError(
            f"{what} id {value.encode('utf-8', 'backslashreplace').decode()!r} holds bytes that are not valid "
            "UTF-8; ids are written to run files and must be text: decode or rename it"
        )
    return value


def _not_a_collection(value, what: str, shapes: str) -> ValueError:
    return ValueError(f"{what} must be {shapes}; got {type(value).__name__} {value!r:.60}")


_QUERY_SHAPES = (
    "a string, a list of strings or Query records, a {qid: text} dict, a DataFrame with qid and query "
    "columns, or a Dataset"
)
_DOC_SHAPES = (
    "a list of strings or Document records, a {docno: text} dict, a DataFrame with docno and text "
    "columns, or a Dataset"
)


def as_queries(queries: str | Sequence | Mapping | pd.DataFrame | Dataset) -> list[Query]:
    """Normalize the many ways a user passes queries to a list of :class:`Query`.

    Accepts one string, a list of strings (ids ``"1"``, ``"2"``, ...), a list of ``Query``, a
    ``{qid: text}`` mapping, a DataFrame with ``qid`` and ``query`` columns, or a :class:`Dataset`.
    Anything else, no queries at all, an empty query, a repeated id or an id that is not text raises
    ``ValueError`` (a ``Query``'s id must be a ``str``; mapping keys and DataFrame cells may also be whole
    numbers, written as digits; ``None`` and NaN never become ids); lone surrogates in a text are
    replaced (see :func:`clean_text`).

    >>> as_queries(["red cats", "blue dogs"])
    [Query(qid='1', text='red cats'), Query(qid='2', text='blue dogs')]
    >>> as_queries("")
    Traceback (most recent call last):
    ...
    ValueError: query '1' is empty
    >>> as_queries([])
    Traceback (most recent call last):
    ...
    ValueError: no queries given (an empty list)
    """
    if isinstance(queries, Dataset):
        out = list(queries.queries)
    elif isinstance(queries, str):
        out = [Query("1", queries)]
    elif isinstance(queries, pd.DataFrame):
        missing = {"qid", "query"} - set(queries.columns)
        if missing:
            raise ValueError(
                f"query DataFrame lacks column(s) {sorted(missing)} (it has {list(map(str, queries.columns))})"
            )
        out = [Query(_id_text(q, "query", False), t) for q, t in zip(queries.qid, queries["query"])]
    elif isinstance(queries, Mapping):
        out = [Query(_id_text(q, "query", False), t) for q, t in queries.items()]
    elif isinstance(queries, (bytes, bytearray)):
        raise ValueError("queries must be text: decode the bytes first (e.g. data.decode('utf-8'))")
    elif isinstance(queries, Iterable):
        out = [q if isinstance(q, Query) else Query(str(i), q) for i, q in enumerate(queries, 1)]
    else:
        raise _not_a_collection(queries, "queries", _QUERY_SHAPES)
    if not out:
        raise ValueError(f"no queries given (an empty {type(queries).__name__})")
    cleaned = []
    for q in out:
        qid = _id_text(q.qid, "query", True)
        if not isinstance(q.text, str):
            raise ValueError(f"query {qid!r} is not a string: {type(q.text).__name__}")
        if not q.text.strip():
            raise ValueError(f"query {qid!r} is empty")
        cleaned.append(Query(qid, clean_text(q.text, f"query {qid!r}")))
    check_unique([q.qid for q in cleaned], "query id")
    return cleaned


def _documents_from_frame(frame: pd.DataFrame) -> list[Document]:
    columns = [str(c) for c in frame.columns]
    id_column = next((c for c in DOCNO_COLUMNS if c in frame.columns), None)
    if id_column is None or "text" not in frame.columns:
        raise ValueError(
            f"a document DataFrame needs an id column ({' or '.join(DOCNO_COLUMNS)}) and a text column; "
            f"it has {columns}"
        )
    titles = frame["title"].fillna("") if "title" in frame.columns else [""] * len(frame)
    return [
        Document(_id_text(d, "document", False), t, ti)
        for d, t, ti in zip(frame[id_column], frame["text"], titles)
    ]


def as_documents(docs: Sequence | Mapping | pd.DataFrame | Dataset) -> list[Document]:
    """Normalize documents: a list of strings (ids ``"0"``, ``"1"``, ...), of ``Document`` (or page-image
    :class:`~lirlab.page_data.Page` records, kept as they are), a ``{docno: text}`` mapping, or a
    DataFrame with ``docno`` (or ``doc_id``, ``docid``, ``_id``), ``text`` and optional ``title`` columns.

    Empty and whitespace-only documents are kept (they encode to their marker tokens alone and score
    low); non-strings, ids that are not text (as for :func:`as_queries`), duplicate ids and no documents
    at all raise ``ValueError``; lone surrogates in a text are replaced (see :func:`clean_text`).

    >>> as_documents({"a": "x", "b": "y"})[1]
    Document(docno='b', text='y', title='')
    >>> as_documents(pd.DataFrame({"docno": ["d1"], "text": ["Bees make honey."]}))
    [Document(docno='d1', text='Bees make honey.', title='')]
    >>> as_documents(pd.DataFrame({"body": ["Bees make honey."]}))
    Traceback (most recent call last):
    ...
    ValueError: a document DataFrame needs an id column (docno or doc_id or docid or _id) and a text column; it has ['body']
    """
    from lirlab.page_data import Page

    if isinstance(docs, Dataset):
        out = list(docs.docs)
    elif isinstance(docs, str):
        raise ValueError("documents must be a list or mapping of texts, not one string")
    elif isinstance(docs, pd.DataFrame):
        out = _documents_from_frame(docs)
    elif isinstance(docs, Mapping):
        out = [Document(_id_text(d, "document", False), t) for d, t in docs.items()]
    elif isinstance(docs, (bytes, bytearray)):
        raise ValueError("documents must be text: decode the bytes first (e.g. data.decode('utf-8'))")
    elif isinstance(docs, Iterable):
        out = [d if isinstance(d, (Document, Page)) else Document(str(i), d) for i, d in enumerate(docs)]
    else:
        raise _not_a_collection(docs, "documents", _DOC_SHAPES)
    if not out:
        raise ValueError(f"no documents given (an empty {type(docs).__name__})")

    cleaned = []
    for d in out:
        docno = _id_text(d.docno, "document", True)
        if isinstance(d, Page):  # a page image stays one: its encoder reads the picture
            cleaned.append(d)
            continue
        if not isinstance(d.text, str) or not isinstance(d.title, str):
            bad = d.text if not isinstance(d.text, str) else d.title
            raise ValueError(f"document {docno!r} is not a string: {type(bad).__name__}")
        what = f"document {docno!r}"
        cleaned.append(Document(docno, clean_text(d.text, what), clean_text(d.title, what)))
    check_unique([d.docno for d in cleaned], "document id")
    return cleaned
