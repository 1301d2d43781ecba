"""Render the demo page set from the demo corpus: ``python -m lirlab.demo_pages.make [--out DIR]``.

Each of the demo corpus's 10 topics becomes 4 pages of 5 passages (40 pages, in corpus order): a running
head, the topic's name on its first page, each passage's title and paragraph, and a footer. Four pages
carry more than text: a table of the page's passages (``printing-p1``, ``blackhole-p2``), a bar chart
of their lengths (``volcano-p1``) and, on the one landscape page (``railway-p1``, two columns), a
timeline of the railway passages' dates. Pages are A4 at 72 dpi (595 x 842 pixels, the landscape one
842 x 595), drawn with Pillow's bundled font and saved as 16-colour PNGs.

The queries are the demo corpus's; a page is judged for a query with the highest grade of the passages
it holds. Each page row keeps its text layer (its passages, table and chart labels) for lexical
baselines. Running the script again writes the same files byte for byte with the same Pillow and
FreeType (``tests/test_page_data.py`` checks the committed pages against a fresh rendering).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
DEMO_CORPUS = HERE.parent / "demo_corpus"

PORTRAIT = (595, 842)
LANDSCAPE = (842, 595)
MARGIN = 48
PASSAGES_PER_PAGE = 5
COLOURS = 16

INK, GREY, RULE, ACCENT, PAPER, FILL = "#1a1a1a", "#6b6b6b", "#c8c8c8", "#1f4e79", "#ffffff", "#dce6f0"

#: The demo corpus's topics (its README), by passage id prefix.
TOPICS = {
    "bees": "Honeybees and pollination",
    "volcano": "Volcanoes",
    "printing": "History of the printing press",
    "sourdough": "Sourdough baking",
    "blackhole": "Black holes",
    "immune": "The human immune system",
    "coral": "Coral reefs",
    "railway": "Railway history",
    "crypto": "Cryptography basics",
    "chess": "Chess openings",
}

#: Pages that carry a figure, and which.
TABLES = {"printing-p1", "blackhole-p2"}
BAR_CHARTS = {"volcano-p1"}
LANDSCAPE_TIMELINES = {"railway-p1"}


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` pixels (the same on every machine with the same Pillow)."""
    return ImageFont.load_default(size=size)


def wrap(draw: ImageDraw.ImageDraw, text: str, face, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels, at spaces."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=face) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + ([line] if line else [])


def year_of(text: str) -> int | None:
    """The first year from 1000 to 2099 a passage names (not a length in millimetres), or None."""
    found = re.search(r"\b(1\d{3}|20\d{2})\b(?! ?(mm|millimetres))", text)
    return int(found.group(1)) if found else None


class Writer:
    """Draws one page top to bottom in a column, and remembers its text layer."""

    def __init__(self, size: tuple[int, int], head: str, foot: str):
        self.image = Image.new("RGB", size, PAPER)
        self.draw = ImageDraw.Draw(self.image)
        self.size = size
        self.text: list[str] = []
        self.draw.text((MARGIN, 22), head, fill=GREY, font=font(10))
        self.draw.line((MARGIN, 38, size[0] - MARGIN, 38), fill=RULE, width=1)
        width = self.draw.textlength(foot, font=font(10))
        self.draw.text(((size[0] - width) / 2, size[1] - 30), foot, fill=GREY, font=font(10))

    def heading(self, x: int, y: int, text: str, size: int = 22) -> int:
        self.draw.text((x, y), text, fill=ACCENT, font=font(size))
        self.text.append(text)
        return y + size + 14

    def passage(self, x: int, y: int, width: int, title: str, body: str) -> int:
        self.draw.text((x, y), title, fill=INK, font=font(15))
        y += 21
        for line in wrap(self.draw, body, font(12), width):
            self.draw.text((x, y), line, fill=INK, font=font(12))
            y += 16
        self.text.extend([title, body])
        return y + 10

    def table(self, x: int, y: int, width: int, caption: str, header: Sequence[str], rows) -> int:
        """A ruled table; the first column is narrow, the rest share the width."""
        self.draw.text((x, y), caption, fill=ACCENT, font=font(13))
        y += 20
        columns = [x, x + 70, x + width - 110, x + width - 50]
        self.draw.rectangle((x, y, x + width, y + 18), fill=FILL)
        for left, cell in zip(columns, header):
            self.draw.text((left + 4, y + 3), cell, fill=INK, font=font(11))
        y += 18
        for row in rows:
            for left, cell in zip(columns, row):
                self.draw.text((left + 4, y + 3), str(cell), fill=INK, font=font(11))
            y += 18
            self.draw.line((x, y, x + width, y), fill=RULE, width=1)
        self.text.append(" ".join([caption, *header, *(str(c) for row in rows for c in row)]))
        return y + 14

    def bar_chart(self, x: int, y: int, width: int, caption: str, bars: Sequence[tuple[str, int]]) -> int:
        """Horizontal bars with their labels and values."""
        self.draw.text((x, y), caption, fill=ACCENT, font=font(13))
        y += 22
        longest = max(value for _, value in bars)
        label_width, bar_room = 170, width - 170 - 30
        for label, value in bars:
            self.draw.text((x, y + 2), label, fill=INK, font=font(11))
            length = round(bar_room * value / longest)
            self.draw.rectangle((x + label_width, y, x + label_width + length, y + 14), fill=ACCENT)
            self.draw.text((x + label_width + length + 5, y + 1), str(value), fill=INK, font=font(11))
            y += 20
        self.draw.line((x + label_width, y - 2, x + label_width + bar_room, y - 2), fill=GREY, width=1)
        self.text.append(" ".join([caption, *(f"{label} {value}" for label, value in bars)]))
        return y + 14

    def timeline(self, x: int, y: int, width: int, caption: str, events: Sequence[tuple[int, str]]) -> int:
        """Dated events on a vertical time axis, labels beside their marks."""
        self.draw.text((x, y), caption, fill=ACCENT, font=font(13))
        y += 24
        first, last = events[0][0], events[-1][0]
        height = 17 * len(events)
        axis = x + 44
        self.draw.line((axis, y, axis, y + height), fill=GREY, width=2)
        for i, (year, label) in enumerate(events):
            mark = y + round(height * (year - first) / max(last - first, 1))
            slot = y + 17 * i + 4
            self.draw.ellipse((axis - 4, mark - 4, axis + 4, mark + 4), fill=ACCENT)
            self.draw.line((axis + 4, mark, axis + 24, slot), fill=RULE, width=1)
            self.draw.text((axis + 28, slot - 7), f"{year}  {label}", fill=INK, font=font(11))
        for year in (first, last):
            mark = y + round(height * (year - first) / max(last - first, 1))
            self.draw.text((x, mark - 6), str(year), fill=GREY, font=font(10))
        self.text.append(" ".join([caption, *(f"{year} {label}" for year, label in events)]))
        return y + height + 20

    def check_room(self, y: int, docno: str) -> None:
        """Refuse a page whose content reached its footer (a longer passage, a larger font)."""
        if y > self.size[1] - 44:
            raise ValueError(f"{docno}: the content runs into the footer (down to y={y})")

    def png(self) -> Image.Image:
        """The page reduced to :data:`COLOURS` colours (small files, text still crisp)."""
        return self.image.quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def render_page(docno: str, topic: str, number: int, passages: list[dict], topic_passages: list[dict]):
    """One page: ``(image, text layer)``."""
    landscape = docno in LANDSCAPE_TIMELINES
    size = LANDSCAPE if landscape else PORTRAIT
    page = Writer(size, f"lirlab demo pages · {TOPICS[topic]}", f"{topic} · page {number} of 4")
    y = 56
    if number == 1:
        y = page.heading(MARGIN, y, TOPICS[topic])
    if landscape:
        column = (size[0] - 2 * MARGIN - 30) // 2
        for p in passages[:3]:
            y = page.passage(MARGIN, y, column, p["title"], p["text"])
        y = 56
        for p in passages[3:]:
            y = page.passage(MARGIN + column + 30, y, column, p["title"], p["text"])
        dated = [(year_of(p["text"]), p["title"]) for p in topic_passages if year_of(p["text"])]
        y = page.timeline(MARGIN + column + 30, y, column, "Railway milestones in these pages", sorted(dated))
        page.check_room(y, docno)
        return page.png(), " ".join(page.text)
    width = size[0] - 2 * MARGIN
    for p in passages:
        y = page.passage(MARGIN, y, width, p["title"], p["text"])
    if docno in TABLES:
        rows = [(p["_id"], p["title"], year_of(p["text"]) or "-", len(p["text"].split())) for p in passages]
        y = page.table(MARGIN, y + 4, width, "On this page", ("Passage", "Title", "Year", "Words"), rows)
    if docno in BAR_CHARTS:
        bars = [(p["title"], len(p["text"].split())) for p in passages]
        y = page.bar_chart(MARGIN, y + 4, width, "Passage length on this page (words)", bars)
    page.check_room(y, docno)
    return page.png(), " ".join(page.text)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def render_all(out: Path) -> list[str]:
    """Write the page set into ``out`` (``pages/*.png``, ``corpus.jsonl``, ``queries.jsonl``,
    ``qrels/test.tsv``); returns the page ids in order."""
    corpus = read_jsonl(DEMO_CORPUS / "corpus.jsonl")
    (out / "pages").mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    page_of: dict[str, str] = {}
    rows = []
    for topic in TOPICS:
        topic_passages = [p for p in corpus if p["_id"].split("-")[0] == topic]
        for number in range(1, len(topic_passages) // PASSAGES_PER_PAGE + 1):
            docno = f"{topic}-p{number}"
            passages = topic_passages[(number - 1) * PASSAGES_PER_PAGE : number * PASSAGES_PER_PAGE]
            image, text = render_page(docno, topic, number, passages, topic_passages)
            image.save(out / "pages" / f"{docno}.png", optimize=True)
            page_of.update((p["_id"], docno) for p in passages)
            rows.append({"_id": docno, "image": f"pages/{docno}.png", "title": TOPICS[topic], "text": text})
    (out / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (out / "queries.jsonl").write_bytes((DEMO_CORPUS / "queries.jsonl").read_bytes())
    grades: dict[tuple[str, str], int] = {}
    lines = (DEMO_CORPUS / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        qid, passage, grade = line.split("\t")
        key = (qid, page_of[passage])
        grades[key] = max(grades.get(key, 0), int(grade))
    (out / "qrels" / "test.tsv").write_text(
        lines[0] + "\n" + "".join(f"{q}\t{d}\t{g}\n" for (q, d), g in grades.items()), encoding="utf-8"
    )
    return [r["_id"] for r in rows]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="folder to write (default: this package folder)"
    )
    args = parser.parse_args(argv)
    ids = render_all(args.out)
    size = sum(f.stat().st_size for f in (args.out / "pages").glob("*.png"))
    print(f"{len(ids)} pages, {size / 1e6:.2f} MB of PNG, in {args.out}")


if __name__ == "__main__":
    main()
