"""What a newcomer meets on the command line and around it: mistakes answered at once in one line,
progress on long searches, slices that keep the judged documents, defaults that agree with each other,
examples that work, and a checkout whose notebooks are all listed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lirlab import cli

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


# -- the notebooks are all listed ---------------------------------------------------------------------


def test_the_notebooks_readme_names_every_notebook():
    readme = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    assert len(NOTEBOOKS) >= 8
    missing = [nb.name for nb in NOTEBOOKS if f"`{nb.name}`" not in readme]
    assert not missing, f"notebooks/README.md does not list {missing}"


def test_the_quickstart_s_next_list_names_every_other_notebook():
    cells = json.loads((ROOT / "notebooks" / "01_quickstart.ipynb").read_text(encoding="utf-8"))["cells"]
    (following,) = [
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("**Next:**")
    ]
    numbers = {int(n) for n in re.findall(r"(?<![\w@])(\d+) ·", following)}
    assert numbers == {int(nb.name[:2]) for nb in NOTEBOOKS} - {1}, following
