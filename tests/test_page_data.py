"""Page-image corpora: the bundled demo pages, page folders (images and PDF pages), ViDoRe's parquet layout
and its hub loader offline."""

from __future__ import annotations

import io
import json
import tomllib
from fnmatch import fnmatch

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lirlab import data
from lirlab.data import load_vidore
from lirlab.page_data import DEMO_PAGES_DIR, Page

from .conftest import REPO

# ---------------------------------------------------------------------------------------------- demo pages


@pytest.fixture(scope="module")
def demo_pages():
    return data.load("demo-pages")


def test_demo_pages_golden_values(demo_pages):
    docs = demo_pages.docs
    assert (len(docs), len(demo_pages.queries), len(demo_pages.qrels)) == (40, 30, 43)
    assert [docs[i].docno for i in (0, 5, 10, 29, 39)] == [
        "bees-p1",
        "volcano-p2",
        "printing-p3",
        "railway-p2",
        "chess-p4",
    ]
    assert all(isinstance(d, Page) and d.source.parent == DEMO_PAGES_DIR / "pages" for d in docs)
    assert demo_pages.qrels.iloc[0].tolist() == ["q01", "printing-p1", 2]
    assert demo_pages.qrels.relevance.value_counts().to_dict() == {2: 30, 1: 13}
    sizes = {d.docno: d.image().size for d in docs}
    assert sizes.pop("railway-p1") == (842, 595)
    assert set(sizes.values()) == {(595, 842)}


def test_a_page_is_judged_with_the_best_grade_of_the_passages_it_holds(demo_pages):
    text = data.load("demo")
    expected: dict[tuple[str, str], int] = {}
    for qid, passage, grade in text.qrels.itertuples(index=False):
        topic, number = passage.rsplit("-", 1)
        page = f"{topic}-p{(int(number) - 1) // 5 + 1}"
        expected[(qid, page)] = max(expected.get((qid, page), 0), grade)
    got = {(q, d): g for q, d, g in demo_pages.qrels.itertuples(index=False)}
    assert got == expected
    assert demo_pages.queries == text.queries


def test_each_page_shows_and_its_text_layer_holds_its_five_passages(demo_pages):
    passages = {d.docno: d for d in data.load("demo").docs}
    for page in demo_pages.docs:
        topic, number = page.docno.rsplit("-p", 1)
        held = [f"{topic}-{n:02d}" for n in range(5 * int(number) - 4, 5 * int(number) + 1)]
        for passage in held:
            assert passages[passage].text in page.text and passages[passage].title in page.text
        ink = np.asarray(page.image().convert("L")) < 128
        assert 0.02 < ink.mean() < 0.2, page.docno  # printed on, not blank or black
    tables = [d.docno for d in demo_pages.docs if "On this page Passage Title Year Words" in d.text]
    assert tables == ["printing-p1", "blackhole-p2"]


def test_the_committed_pages_are_what_the_script_renders(tmp_path):
    from lirlab.demo_pages.make import render_all

    ids = render_all(tmp_path)
    assert ids == [d.docno for d in data.load("demo-pages").docs]
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (tmp_path / name).read_bytes() == (DEMO_PAGES_DIR / name).read_bytes(), name
    for docno in ids:
        fresh, committed = tmp_path / "pages" / f"{docno}.png", DEMO_PAGES_DIR / "pages" / f"{docno}.png"
        if fresh.read_bytes() == committed.read_bytes():
            continue
        # another Pillow or FreeType may rasterise glyph edges differently: the pages must still agree
        a = np.asarray(Image.open(fresh).convert("L"), dtype=np.int16)
        b = np.asarray(Image.open(committed).convert("L"), dtype=np.int16)
        assert a.shape == b.shape and (np.abs(a - b) > 64).mean() < 0.005, docno


def test_the_demo_pages_are_small_and_shipped_in_the_wheel():
    files = [p for p in DEMO_PAGES_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    pngs = [p for p in files if p.suffix == ".png"]
    assert len(pngs) == 40 and sum(p.stat().st_size for p in pngs) < 1_500_000
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "lirlab"
    ]
    for path in files:
        relative = path.relative_to(DEMO_PAGES_DIR.parent).as_posix()
        if path.suffix != ".py":
            assert any(fnmatch(relative, p) for p in patterns), f"{relative} is not package data"
    assert "CC BY 4.0" in (DEMO_PAGES_DIR / "README.md").read_text()


def test_pages_pass_through_as_documents_and_slices(demo_pages):
    docs = data.as_documents(demo_pages)
    assert docs == list(demo_pages.docs)
    assert data.as_documents(list(demo_pages.docs[:2])) == list(demo_pages.docs[:2])
    small = demo_pages.slice(max_queries=2, max_docs=5)
    assert len(small.docs) == 5 and set(small.qrels.doc_id) <= {d.docno for d in small.docs}


# ---------------------------------------------------------------------------------------------- page folders


def write_folder(folder, rows, qrels=(("q1", "a", 1),)):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "red square"}\n{"_id": "q9", "text": "unjudged"}\n'
    )
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels)
    )
    return folder


@pytest.fixture
def pictures(tmp_path):
    """A PNG and a three-page PDF (pages 100x140, 140x100 and 100x140 points) inside ``tmp_path/set``."""
    folder = tmp_path / "set"
    (folder / "pages").mkdir(parents=True)
    Image.new("RGB", (60, 80), "red").save(folder / "pages" / "a.png")
    sheets = [
        Image.new("RGB", size, colour)
        for size, colour in (((100, 140), "blue"), ((140, 100), "green"), ((100, 140), "white"))
    ]
    sheets[0].save(folder / "report.pdf", save_all=True, append_images=sheets[1:], resolution=72)
    return folder


def test_a_page_folder_loads_images_and_pdf_pages(pictures):
    rows = [
        {"_id": "a", "image": "pages/a.png", "title": "Red", "text": "a red page"},
        {"_id": "b", "pdf": "report.pdf", "page": 2},
        {"_id": "c", "pdf": "report.pdf", "page": 1, "text": "given"},
    ]
    ds = data.load(write_folder(pictures, rows))
    assert [d.docno for d in ds.docs] == ["a", "b", "c"] and [q.qid for q in ds.queries] == ["q1"]
    a, b, c = ds.docs
    assert a.image().getpixel((0, 0)) == (255, 0, 0) and a.full_text == "Red a red page"
    assert (b.page_number, b.is_pdf, b.text) == (2, True, "")  # a picture-only PDF has no text layer
    assert b.image().size == (280, 200) and b.image(dpi=72).size == (140, 100)
    assert np.allclose(b.image().getpixel((10, 10)), (0, 128, 0), atol=3)  # page 2 is the green one
    assert c.text == "given" and c.image(dpi=72).size == (100, 140)


@pytest.mark.parametrize(
    ("row", "error", "match"),
    [
        ({"_id": "x", "image": "../outside.png"}, ValueError, "lies outside the folder"),
        ({"_id": "x", "image": "/etc/hostname"}, ValueError, "lies outside the folder"),
        ({"_id": "x", "image": "pages/link.png"}, ValueError, "lies outside the folder"),
        ({"_id": "x", "image": "pages/none.png"}, FileNotFoundError, "'pages/none.png' is missing"),
        ({"_id": "x", "pdf": "report.pdf", "page": 4}, ValueError, "has 3 page"),
        ({"_id": "x", "pdf": "report.pdf", "page": 0}, ValueError, "from 1"),
        ({"_id": "x", "pdf": "report.pdf"}, ValueError, "'page' must be"),
        (
            {"_id": "x", "image": "pages/a.png", "pdf": "report.pdf", "page": 1},
            ValueError,
            "either an 'image'",
        ),
        ({"_id": "x", "image": 3}, ValueError, "non-empty string"),
    ],
)
def test_a_bad_page_row_is_refused_in_one_line(pictures, row, error, match):
    Image.new("RGB", (4, 4)).save(pictures.parent / "outside.png")
    (pictures / "pages" / "link.png").symlink_to(pictures.parent / "outside.png")
    write_folder(pictures, [{"_id": "a", "image": "pages/a.png"}, row])
    with pytest.raises(error, match=match) as refused:
        data.load(pictures)
    assert "\n" not in str(refused.value) and "corpus.jsonl:2" in str(refused.value)


def text_pdf(words: str) -> bytes:
    """A one-page PDF (200 x 100 points) whose text layer holds ``words`` in Helvetica."""
    content = f"BT /F1 12 Tf 20 50 Td ({words}) Tj ET".encode()
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >> endobj\n"
        b"4 0 obj << /Length "
        + str(len(content)).encode()
        + b" >> stream\n"
        + content
        + b"\nendstream endobj\n"
        b"5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


def test_a_pdf_page_without_a_given_text_takes_its_text_layer(pictures):
    (pictures / "notes.pdf").write_bytes(text_pdf("bees make honey"))
    ds = data.load(write_folder(pictures, [{"_id": "a", "pdf": "notes.pdf", "page": 1}]))
    page = ds.docs[0]
    assert page.text == "bees make honey" and page.image(dpi=72).size == (200, 100)
    ink = np.asarray(page.image().convert("L")) < 128
    assert ink.any()  # the words are drawn, not only in the text layer


def test_a_pdf_page_without_pypdfium2_names_the_extra(pictures, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    write_folder(pictures, [{"_id": "a", "pdf": "report.pdf", "page": 1}])
    with pytest.raises(ImportError, match=r"pip install 'lirlab\[pages\]'"):
        data.load(pictures)


# ---------------------------------------------------------------------------------------------- ViDoRe


def png_bytes(colour: str, size=(30, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def write_vidore(folder, split: str = "test", score_type=None):
    """A ViDoRe BEIR set as the hub stores it (the parquet files ``datasets`` writes: int64 ids, an Image
    feature as a struct of bytes and path)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    corpus = pa.table(
        {
            "corpus-id": pa.array([0, 1, 2], pa.int64()),
            "image": pa.array(
                [{"bytes": png_bytes(c), "path": None} for c in ("red", "green", "blue")], type=image
            ),
        }
    )
    queries = pa.table(
        {"query-id": pa.array([10, 11, 12], pa.int64()), "query": ["red page?", "green page?", "unjudged"]}
    )
    qrels = pa.table(
        {
            "query-id": pa.array([10, 11], pa.int64()),
            "corpus-id": pa.array([0, 1], pa.int64()),
            "score": pa.array([1, 1], score_type or pa.int64()),
        }
    )
    for name, table in (("corpus", corpus), ("queries", queries), ("qrels", qrels)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / name / f"{split}-00000-of-00001.parquet")
    return folder


def test_a_local_copy_of_a_vidore_set_loads_as_pages(tmp_path):
    pytest.importorskip("pyarrow")
    ds = data.load(write_vidore(tmp_path / "tabfquad_test_subsampled_beir"))
    assert ds.name == "tabfquad_test_subsampled_beir"
    assert [d.docno for d in ds.docs] == ["0", "1", "2"] and [q.qid for q in ds.queries] == ["10", "11"]
    assert ds.docs[1].image().getpixel((0, 0)) == (0, 128, 0) and ds.docs[1].source is None
    assert ds.qrels.values.tolist() == [["10", "0", 1], ["11", "1", 1]]
    assert "bytes" not in repr(ds.docs[0])
    with pytest.raises(FileNotFoundError, match="no dev-.*parquet files; splits here: \\['test'\\]"):
        data.load(tmp_path / "tabfquad_test_subsampled_beir", split="dev")


def test_vidore_float_scores_become_grades_and_fractions_are_refused(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = write_vidore(tmp_path / "set", score_type=pa.float64())  # as syntheticDocQA_*_beir stores them
    assert data.load(folder).qrels.relevance.tolist() == [1, 1]
    table = pa.table({"query-id": [10], "corpus-id": [0], "score": [0.5]})
    pq.write_table(table, folder / "qrels" / "test-00000-of-00001.parquet")
    with pytest.raises(ValueError, match="query 10 has score 0.5, not a whole number"):
        data.load(folder)


def test_the_hub_loader_downloads_the_three_configs_of_the_split(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    import huggingface_hub

    asked = {}

    def snapshot_download(repo_id, **options):
        asked.update(repo_id=repo_id, **options)
        return str(write_vidore(tmp_path / "snapshot"))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    ds = data.load("vidore/tabfquad_test_subsampled_beir")
    assert ds.name == "vidore/tabfquad_test_subsampled_beir" and len(ds.docs) == 3
    assert asked["repo_type"] == "dataset"
    assert sorted(asked["allow_patterns"]) == ["corpus/test-*", "qrels/test-*", "queries/test-*"]


def test_the_hub_loader_offline_says_so_in_one_line():
    with pytest.raises(RuntimeError) as refused:
        load_vidore("vidore/tabfquad_test_subsampled_beir")
    message = str(refused.value)
    assert "\n" not in message and "no network connection" in message
    assert "huggingface-cli download --repo-type dataset vidore/tabfquad_test_subsampled_beir" in message


def test_a_vidore_parquet_without_its_columns_is_refused(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = write_vidore(tmp_path / "set")
    pq.write_table(
        pa.table({"corpus-id": [0], "picture": ["x"]}), folder / "corpus" / "test-00000-of-00001.parquet"
    )
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['image'\]"):
        data.load(folder)


def test_the_qrels_reader_is_shared_with_text_folders(tmp_path):
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n')
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\tyes\n")
    with pytest.raises(ValueError, match="line 2: score 'yes' is not a whole number"):
        data.load(folder)
    assert isinstance(data.read_qrels(REPO / "lirlab" / "demo_corpus" / "qrels" / "test.tsv"), pd.DataFrame)
