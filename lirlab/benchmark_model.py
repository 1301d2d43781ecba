"""The benchmark checkpoint: where it is, and the one function that builds or finds it.

Every benchmark (``lirlab bench``, ``python -m lirlab.bench.*``) and ``lirlab train``'s default start
model use MiniLM behind the fixed 128-d projection that every quoted peer figure used. It lives at
:data:`BENCH_MODEL`, built on first use by the contributors' tool beside this checkout
(:data:`BUILD_TOOL`). This module sits below training and the benchmarks alike, imports neither, and
imports no torch, so both reach the same builder without one layer importing the other.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The benchmark checkpoint's folder, relative to the working directory (the repository's root).
BENCH_MODEL = "benchmarks/models/minilm-colbert"

#: The workplace tool that builds :data:`BENCH_MODEL`: ``../shared`` seen from the repository root (the
#: folder holding the ``lirlab`` package), never from the current directory, where anyone could plant one.
BUILD_TOOL = Path(__file__).resolve().parents[1].parent / "shared" / "tools" / "build_minilm_colbert.py"


def benchmark_model(name: str = BENCH_MODEL, tool: str | Path | None = None) -> str:
    """``name``, building :data:`BENCH_MODEL` first when that is what ``name`` is and it is missing.

    Built with :data:`BUILD_TOOL` (or ``tool``, only when named explicitly), so our figures compare with
    the quoted ones; the script run is named on standard error. Any other ``name`` is returned as it is.

    Raises
    ------
    FileNotFoundError
        When the checkpoint is missing and no build tool is there.
    RuntimeError
        When the build tool fails (its last line of output is quoted).

    Examples
    --------
    >>> benchmark_model("my/checkpoint")
    'my/checkpoint'
    """
    if name != BENCH_MODEL or Path(name, "config.json").is_file():
        return name
    script = Path(tool).resolve() if tool is not None else BUILD_TOOL
    if not script.is_file():
        raise FileNotFoundError(
            f"{name} is missing and the tool that builds it is not at {script}; "
            "pass --model FOLDER or --build-tool FILE"
        )
    import subprocess

    print(f"building {name} with {script}", file=sys.stderr)
    done = subprocess.run(
        [sys.executable, str(script), name, "--layout", "stanford"], capture_output=True, text=True
    )
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{script} failed to build {name} (exit {done.returncode}): {last[0]}")
    return name
