"""Griffe extension: doctests written in a docstring's prose render as code, as they do in Examples.

numpydoc puts doctests under an ``Examples`` heading, and griffe only recognises ``>>>`` lines there;
short docstrings keep a doctest in their prose instead, where Markdown would read ``[a]\\n[b]`` as a
link. Each run of ``>>>`` lines and their output outside an ``Examples`` section is fenced as ``pycon``.
"""

from __future__ import annotations

import re

import griffe

SECTION_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")


def fence_prose_doctests(text: str) -> str:
    """``text`` with each doctest block outside an ``Examples`` section wrapped in a ``pycon`` fence.

    >>> fence_prose_doctests("Twice.\\n\\n>>> 2 * 2\\n4").splitlines()
    ['Twice.', '', '```pycon', '>>> 2 * 2', '4', '```']
    """
    lines = text.splitlines()
    out: list[str] = []
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and SECTION_UNDERLINE.match(lines[i + 1]):
            section = line.strip()
        if section != "Examples" and line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += [f"{indent}```pycon", *block, f"{indent}```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence prose doctests of every object's docstring before it is parsed."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_prose_doctests(obj.docstring.value)
