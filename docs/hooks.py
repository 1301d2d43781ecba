"""MkDocs hook: serve the figures kept beside the notebooks and benchmark results without copying them.

The pages link ``figures/NAME.png`` (``notebooks/figures/``, written by ``lirlab demo``) and
``results/NAME.png`` (``benchmarks/results/``, written by ``lirlab bench``); the built site gets those
files at those paths, so a figure is regenerated in one place only.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

REPOSITORY = Path(__file__).resolve().parent.parent
FIGURE_FOLDERS = {
    "figures": REPOSITORY / "notebooks" / "figures",
    "results": REPOSITORY / "benchmarks" / "results",
}


def on_files(files, config):
    """Add every PNG of the figure folders to the site under its folder's short name."""
    for prefix, folder in FIGURE_FOLDERS.items():
        for image in sorted(folder.glob("*.png")):
            files.append(File.generated(config, f"{prefix}/{image.name}", abs_src_path=str(image)))
    return files
