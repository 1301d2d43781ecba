"""Page-image corpora: documents that are pictures of pages, beside the BEIR text layout.

A page folder is a BEIR folder whose corpus rows name a picture instead of holding text::

    corpus.jsonl      {"_id": "p1", "image": "pages/p1.png"}
                      {"_id": "p2", "pdf": "report.pdf", "page": 3}      (pages count from 1)
    queries.jsonl     {"_id": "q1", "text": "..."}
    qrels/test.tsv    query-id <TAB> corpus-id <TAB> score (with a header line)

Paths are relative to the folder and may not leave it. A row may also carry ``"title"`` and ``"text"``
(the page's text layer, which a lexical baseline such as BM25 reads); a PDF page without ``"text"``
takes its PDF's text layer. Such a folder loads as a :class:`~lirlab.data.Dataset` whose documents
are :class:`Page` records, so searches, runs and evaluation work as for text.

Three sources:

* ``"demo-pages"``: 40 pages lirlab rendered from the demo corpus (``lirlab/demo_pages``, shipped in the
  wheel; ``lirlab/demo_pages/make.py`` made them);
* a local page folder as above, or a folder holding a ViDoRe BEIR set as the hub stores it
  (``corpus/``, ``queries/`` and ``qrels/`` of parquet files);
* a ViDoRe BEIR set on the Hugging Face hub, ``"vidore/<name>_beir"`` (downloaded on first use).

Examples
--------
>>> from lirlab import data
>>> pages = data.load("demo-pages")
>>> len(pages.docs), pages.docs[0].docno, pages.docs[0].image().size
(40, 'bees-p1', (595, 842))
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from lirlab.data import QRELS_COLUMNS, Dataset, Query, check_unique, read_qrels
from lirlab.storage import as_path

if TYPE_CHECKING:
    from PIL import Image

DEMO_PAGES_DIR = Path(__file__).resolve().parent / "demo_pages"

#: Resolution PDF pages are rendered at, in dots per inch (a US-letter page becomes 1224 x 1584 pixels;
#: the page models' processors resize it to their own input size).
PDF_DPI = 144

#: How a missing optional package is named, with the extra that installs it.
PAGES_EXTRA = "pip install 'lirlab[pages]'"


@dataclass(frozen=True)
class Page:
    """One page-image document: where its picture is, and its text layer when known.

    Parameters
    ----------
    docno : str
        The page's id.
    source : Path or None
        The image file, or the PDF holding the page; ``None`` when the picture travels in ``data``.
    page_number : int or None
        For a PDF, which page (counting from 1, as a PDF viewer shows it).
    text, title : str
        The page's text layer and title when the corpus gives them (``""`` otherwise): what a lexical
        baseline reads, never what a page model sees.
    data : bytes or None
        The encoded picture itself (PNG, JPEG...), for sets that store images inline (ViDoRe's parquet).

    Examples
    --------
    >>> page = Page("p1", DEMO_PAGES_DIR / "pages" / "bees-p1.png")
    >>> page.image().mode, page.full_text
    ('RGB', '')
    """

    docno: str
    source: Path | None
    page_number: int | None = None
    text: str = field(default="", repr=False)
    title: str = ""
    data: bytes | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.source is None and self.data is None:
            raise ValueError(f"page {self.docno!r} has neither an image file nor image data")
        if self.page_number is not None and (
            isinstance(self.page_number, bool)
            or not isinstance(self.page_number, int)
            or self.page_number < 1
        ):
            raise ValueError(
                f"page {self.docno!r}: page_number must be a whole number from 1, got {self.page_number!r}"
            )

    @property
    def full_text(self) -> str:
        """Title and text layer joined by a space (as :attr:`lirlab.data.Document.full_text`)."""
        return f"{self.title} {self.text}" if self.title else self.text

    @property
    def is_pdf(self) -> bool:
        return self.page_number is not None

    def image(self, dpi: int = PDF_DPI) -> Image.Image:
        """The page as an RGB PIL image (a PDF page rendered at ``dpi`` by pypdfium2)."""
        from PIL import Image

        if self.is_pdf:
            return render_pdf_page(self.source, self.page_number, dpi)
        with Image.open(io.BytesIO(self.data) if self.data is not None else self.source) as picture:
            return picture.convert("RGB")


def render_pdf_page(pdf: str | Path, page_number: int, dpi: int = PDF_DPI) -> Image.Image:
    """Page ``page_number`` (from 1) of ``pdf`` as an RGB PIL image, rendered by pypdfium2 at ``dpi``."""
    pdfium = _pypdfium2()
    document = pdfium.PdfDocument(str(pdf))
    try:
        if not 1 <= page_number <= len(document):
            raise ValueError(f"{pdf}: has {len(document)} page(s), page {page_number} asked for")
        page = document[page_number - 1]
        try:
            return page.render(scale=dpi / 72).to_pil().convert("RGB")
        finally:
            page.close()
    finally:
        document.close()


def _pypdfium2():
    try:
        import pypdfium2
    except ImportError:
        raise ImportError(f"reading PDF pages needs pypdfium2: {PAGES_EXTRA}") from None
    return pypdfium2


def is_page_folder(folder: Path) -> bool:
    """Whether ``folder`` holds page images: a ``corpus.jsonl`` whose first row names an ``image`` or a
    ``pdf``, or a ViDoRe parquet layout (``corpus/*.parquet``)."""
    if any((folder / "corpus").glob("*.parquet")):
        return True
    corpus = folder / "corpus.jsonl"
    if not corpus.is_file():
        return False
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(first, dict) and ("image" in first or "pdf" in first)
    return False


def load_pages(folder: str | Path, split: str = "test", name: str | None = None) -> Dataset:
    """Load a page folder (see the module's docstring); queries are those judged in ``qrels/<split>.tsv``.

    Raises
    ------
    FileNotFoundError
        A file the folder needs, or an image a row names, is missing.
    ValueError
        A row is malformed, names a path outside the folder, or a PDF page the PDF lacks.
    """
    from lirlab.data import _field, _numbered_jsonl, _text

    folder = as_path(folder, "page folder")
    if any((folder / "corpus").glob("*.parquet")):
        return load_vidore_folder(folder, split=split, name=name)
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    root = folder.resolve()
    docs = []
    with _OpenPdfs() as pdfs:
        for (file, line), row in _numbered_jsonl(folder / "corpus.jsonl"):
            docno = _field(row, "_id", file, line)
            title, text = _text(row, "title", file, line, ""), _text(row, "text", file, line, "")
            where = f"{file}:{line}"
            if ("image" in row) == ("pdf" in row):
                raise ValueError(
                    f"{where}: a page row names either an 'image' or a 'pdf' (with its 'page'), not {sorted(row)}"
                )
            if "image" in row:
                docs.append(Page(docno, _inside(root, row["image"], where), text=text, title=title))
                continue
            pdf = _inside(root, row["pdf"], where)
            number = row.get("page")
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ValueError(
                    f"{where}: 'page' must be the page's number in the PDF, from 1, got {number!r}"
                )
            document = pdfs.open(pdf)
            if number > len(document):
                raise ValueError(f"{where}: {row['pdf']} has {len(document)} page(s), not a page {number}")
            if "text" not in row:
                text = _page_text(document, number)
            docs.append(Page(docno, pdf, number, text=text, title=title))
    if not docs:
        raise ValueError(f"{folder / 'corpus.jsonl'}: holds no pages")
    judged = set(qrels.query_id)
    queries = tuple(
        Query(_field(q, "_id", file, line), _text(q, "text", file, line, None))
        for (file, line), q in _numbered_jsonl(folder / "queries.jsonl")
        if _field(q, "_id", file, line) in judged
    )
    return Dataset(name or folder.name, tuple(docs), queries, qrels)


def _inside(root: Path, relative, where: str) -> Path:
    """``root / relative`` resolved, refused unless it is an existing file inside ``root``."""
    if not isinstance(relative, str) or not relative:
        raise ValueError(f"{where}: the page's path must be a non-empty string, got {relative!r}")
    candidate = Path(relative)
    resolved = (root / candidate).resolve()
    if candidate.is_absolute() or not resolved.is_relative_to(root):
        raise ValueError(
            f"{where}: {relative!r} lies outside the folder; page paths are relative to the folder holding "
            "corpus.jsonl and stay inside it"
        )
    if not resolved.is_file():
        raise FileNotFoundError(f"{where}: {relative!r} is missing ({resolved})")
    return resolved


class _OpenPdfs:
    """The PDFs a page folder names, each opened once while the folder loads."""

    def __init__(self):
        self.documents: dict[Path, object] = {}

    def open(self, pdf: Path):
        if pdf not in self.documents:
            pdfium = _pypdfium2()
            try:
                self.documents[pdf] = pdfium.PdfDocument(str(pdf))
            except pdfium.PdfiumError as e:
                raise ValueError(f"{pdf}: not a readable PDF ({e})") from None
        return self.documents[pdf]

    def __enter__(self) -> _OpenPdfs:
        return self

    def __exit__(self, *exc) -> None:
        for document in self.documents.values():
            document.close()


def _page_text(document, page_number: int) -> str:
    page = document[page_number - 1]
    textpage = page.get_textpage()
    try:
        return " ".join(textpage.get_text_range().split())
    finally:
        textpage.close()
        page.close()


def pdf_page_text(pdf: str | Path, page_number: int) -> str:
    """The text layer of page ``page_number`` (from 1) of ``pdf`` (``""`` for a scanned page)."""
    with _OpenPdfs() as pdfs:
        return _page_text(pdfs.open(Path(pdf)), page_number)


# ---------------------------------------------------------------------------------------------- ViDoRe

#: How a failed hub download is reported: what to do without internet.
VIDORE_OFFLINE_HINT = (
    "without internet, download it elsewhere (huggingface-cli download --repo-type dataset {repo} --local-dir "
    "DIR) and load the folder, or load a local page folder (corpus.jsonl naming images, queries.jsonl, "
    "qrels/test.tsv)"
)


def load_vidore(repo_id: str, split: str = "test", revision: str | None = None) -> Dataset:
    """Load a ViDoRe BEIR-format set from the Hugging Face hub (``vidore/<name>_beir``).

    The hub stores three parquet configs, ``corpus`` (``corpus-id``, ``image``), ``queries``
    (``query-id``, ``query``) and ``qrels`` (``query-id``, ``corpus-id``, ``score``); huggingface_hub
    downloads them once into its cache (later loads read the cache, offline too). Page pictures stay
    inline (:attr:`Page.data`).

    Raises
    ------
    RuntimeError
        One line when the download fails (no network, unknown set), saying how to work without internet.
    """
    from huggingface_hub import snapshot_download

    parts = [f"{config}/{split}-*" for config in ("corpus", "queries", "qrels")]
    try:
        folder = snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=parts)
    except (
        Exception
    ) as e:  # network, authentication and cache errors come from several layers of the hub client
        raise RuntimeError(
            f"could not download the ViDoRe set {repo_id!r} from the Hugging Face hub ({_hub_cause(e)}); "
            + VIDORE_OFFLINE_HINT.format(repo=repo_id)
        ) from None
    return load_vidore_folder(Path(folder), split=split, name=repo_id)


def _hub_cause(error: BaseException) -> str:
    kind = type(error).__name__
    if "Offline" in kind or "LocalEntryNotFound" in kind or "Connect" in kind or "Connection" in str(error):
        return "no network connection, and not in the local cache"
    if "RepositoryNotFound" in kind or "404" in str(error):
        return "no such dataset on the hub"
    text = " ".join(str(error).split())
    return f"{kind}: {text[:160]}{'…' if len(text) > 160 else ''}"


def _parquet_rows(folder: Path, config: str, split: str, columns: tuple[str, ...]) -> Iterator[dict]:
    """Rows of ``<folder>/<config>/<split>-*.parquet`` (every shard, in name order), the named columns
    required."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading ViDoRe's parquet files needs pyarrow: {PAGES_EXTRA}") from None
    shards = sorted((folder / config).glob(f"{split}-*.parquet"))
    if not shards:
        available = sorted({p.name.split("-")[0] for p in (folder / config).glob("*.parquet")})
        raise FileNotFoundError(
            f"{folder / config}: no {split}-*.parquet files; splits here: {available or 'none'}"
        )
    for shard in shards:
        table = pq.read_table(shard)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ValueError(f"{shard}: lacks column(s) {missing} (it has {table.column_names})")
        yield from table.select(list(columns)).to_pylist()


def _image_bytes(value, where: str) -> bytes:
    """The encoded picture of a ``datasets`` Image cell (``{"bytes": ..., "path": ...}``)."""
    if isinstance(value, dict) and isinstance(value.get("bytes"), bytes) and value["bytes"]:
        return value["bytes"]
    raise ValueError(
        f"{where}: the image cell holds no encoded picture (expected {{'bytes': ..., 'path': ...}})"
    )


def _grade(score, where: Path, qid) -> int:
    """A relevance grade from a qrels cell: some ViDoRe sets store ``1.0`` (float64) for ``1``."""
    if isinstance(score, float) and score.is_integer():
        return int(score)
    if isinstance(score, bool) or not isinstance(score, int):
        raise ValueError(
            f"{where}: query {qid!r} has score {score!r}, not a whole number (a relevance grade)"
        )
    return score


def load_vidore_folder(folder: str | Path, split: str = "test", name: str | None = None) -> Dataset:
    """Load a ViDoRe BEIR set from a local copy of its hub folder (``corpus/``, ``queries/``, ``qrels/``
    holding ``<split>-*.parquet``); queries are restricted to the judged ones."""
    folder = as_path(folder, "ViDoRe folder")
    docs = []
    for row in _parquet_rows(folder, "corpus", split, ("corpus-id", "image")):
        docno = str(row["corpus-id"])
        docs.append(
            Page(docno, None, data=_image_bytes(row["image"], f"{folder / 'corpus'}: page {docno!r}"))
        )
    qrels = pd.DataFrame(
        [
            (str(r["query-id"]), str(r["corpus-id"]), _grade(r["score"], folder / "qrels", r["query-id"]))
            for r in _parquet_rows(folder, "qrels", split, ("query-id", "corpus-id", "score"))
        ],
        columns=QRELS_COLUMNS,
    )
    judged = set(qrels.query_id)
    queries = tuple(
        Query(str(r["query-id"]), r["query"])
        for r in _parquet_rows(folder, "queries", split, ("query-id", "query"))
        if str(r["query-id"]) in judged
    )
    check_unique([q.qid for q in queries], "query id")
    return Dataset(name or folder.name, tuple(docs), queries, qrels)
