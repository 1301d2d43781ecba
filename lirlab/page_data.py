"""Page-image corpora: documents that are pictures of pages, beside the BEIR text layout.

A page folder is a BEIR folder whose corpus rows name a picture instead of holding text::

    corpus.jsonl      {"_id": "p1", "image": "pages/p1.png"}
                      {"_id": "p2", "pdf": "report.pdf", "page": 3}      (pages count from 1)
    queries.jsonl     {"_id": "q1", "text": "..."}
    qrels/test.tsv    query-id <TAB> corpus-id <TAB> score (with a header line)

Paths are relative to the folder and may not leave it. A row may also carry ``"title"`` and ``"text"``
(the page's text layer, which a lexical baseline such as BM25 reads); a PDF page without ``"text"``
takes its PDF's text layer. :func:`lirlab.data.load` reads such a folder into a
:class:`~lirlab.data.Dataset` whose documents are :class:`Page` records, so searches, runs and
evaluation work as for text; this module holds what is particular to pages (the record, reading a
row, PDF rendering, ViDoRe's files) and imports nothing from :mod:`lirlab.data`.

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


def page_from_row(
    row: dict, docno: str, root: Path, where: str, pdfs: OpenPdfs, title: str = "", text: str | None = None
) -> Page:
    """The :class:`Page` a page folder's corpus row names (its ``image``, or its ``pdf`` and ``page``).

    Parameters
    ----------
    row : dict
        The JSON object of the row.
    docno, title : str
        Its id and title, already read.
    root : Path
        The folder, resolved: paths must stay inside it.
    where : str
        ``"file:line"`` for error messages.
    pdfs : OpenPdfs
        The PDFs opened so far (each is opened once per folder).
    text : str or None
        The row's ``"text"``; ``None`` when it has none (a PDF page then takes its text layer).

    Raises
    ------
    FileNotFoundError
        The image or PDF is missing.
    ValueError
        The row names both or neither, a path outside the folder, or a page the PDF lacks.
    """
    if ("image" in row) == ("pdf" in row):
        raise ValueError(
            f"{where}: a page row names either an 'image' or a 'pdf' (with its 'page'), not {sorted(row)}"
        )
    if "image" in row:
        return Page(docno, _inside(root, row["image"], where), text=text or "", title=title)
    pdf = _inside(root, row["pdf"], where)
    number = row.get("page")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"{where}: 'page' must be the page's number in the PDF, from 1, got {number!r}")
    document = pdfs.open(pdf)
    if number > len(document):
        raise ValueError(f"{where}: {row['pdf']} has {len(document)} page(s), not a page {number}")
    return Page(docno, pdf, number, text=_page_text(document, number) if text is None else text, title=title)


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


class OpenPdfs:
    """The PDFs a page folder names, each opened once while the folder loads (a context manager that
    closes them)."""

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

    def __enter__(self) -> OpenPdfs:
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
    with OpenPdfs() as pdfs:
        return _page_text(pdfs.open(Path(pdf)), page_number)


# ---------------------------------------------------------------------------------------------- ViDoRe

#: How a failed hub download is reported: what to do without internet.
VIDORE_OFFLINE_HINT = (
    "without internet, download it elsewhere (huggingface-cli download --repo-type dataset {repo} --local-dir "
    "DIR) and load the folder, or load a local page folder (corpus.jsonl naming images, queries.jsonl, "
    "qrels/test.tsv)"
)


def download_vidore(repo_id: str, split: str = "test", revision: str | None = None) -> Path:
    """The local folder of a ViDoRe BEIR set (``vidore/<name>_beir``), downloaded from the Hugging Face hub.

    The hub stores three parquet configs, ``corpus`` (``corpus-id``, ``image``), ``queries``
    (``query-id``, ``query``) and ``qrels`` (``query-id``, ``corpus-id``, ``score``); huggingface_hub
    fetches the ``split``'s files once into its cache (later calls read the cache, offline too).
    :func:`lirlab.data.load` reads the folder (:func:`read_vidore`).

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
    return Path(folder)


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


def read_vidore(
    folder: Path, split: str = "test"
) -> tuple[list[Page], list[tuple[str, str]], list[tuple[str, str, int]]]:
    """The pages, queries ``(qid, text)`` and judgments ``(qid, docno, grade)`` of a ViDoRe BEIR set's
    folder (``corpus/``, ``queries/``, ``qrels/`` holding ``<split>-*.parquet``); pictures stay inline
    (:attr:`Page.data`)."""
    pages = []
    for row in _parquet_rows(folder, "corpus", split, ("corpus-id", "image")):
        docno = str(row["corpus-id"])
        pages.append(
            Page(docno, None, data=_image_bytes(row["image"], f"{folder / 'corpus'}: page {docno!r}"))
        )
    judgments = [
        (str(r["query-id"]), str(r["corpus-id"]), _grade(r["score"], folder / "qrels", r["query-id"]))
        for r in _parquet_rows(folder, "qrels", split, ("query-id", "corpus-id", "score"))
    ]
    queries = [
        (str(r["query-id"]), r["query"])
        for r in _parquet_rows(folder, "queries", split, ("query-id", "query"))
    ]
    return pages, queries, judgments
