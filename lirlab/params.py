"""Declared knobs.

Every tunable setting in lirlab is declared once as a :class:`Param`: its name, type, default, range
and what it trades. The same declaration validates user input, renders the README/docs tables and
builds widget sliders, so the three can never disagree.

Examples
--------
>>> p = Param("n_probe", int, 2, "centroids probed per query token", low=1, high=1024)
>>> p.validate(4)
4
>>> p.validate(0)
Traceback (most recent call last):
...
ValueError: n_probe must be >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Largest whole number an ``int`` knob without its own ``high`` accepts (sizes and counts fit int32).
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Param:
    """One declared knob.

    Parameters
    ----------
    name : str
        Keyword name used everywhere (API, CLI flag, widget).
    type : type
        ``int``, ``float``, ``bool`` or ``str``.
    default : Any
        Default value (``None`` means "derived at run time", see ``description``).
    description : str
        One sentence saying what it does.
    low, high : float, optional
        Inclusive bounds for numbers.
    choices : tuple, optional
        Allowed values.
    latency, memory, quality : str
        Which way raising the knob moves each: ``"up"``, ``"down"`` or ``""`` (no effect).
    aliases : str
        The same knob's name in other tools, for the docs.
    """

    name: str
    type: type
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    latency: str = ""
    memory: str = ""
    quality: str = ""
    aliases: str = ""

    def _range_text(self) -> str:
        if self.low is None and self.high is None:
            return ""
        low = "" if self.low is None else f"{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}"
        return f" in {low}…{high}"

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to the declared type, or raise ``ValueError`` naming the knob.

        NaN and infinite numbers are refused with the knob's range, and whole numbers beyond
        :data:`MAX_INT` are refused for int knobs without a ``high`` (so they never overflow later).

        >>> Param("ndocs", int, 256, "candidates", low=1).validate(float("inf"))
        Traceback (most recent call last):
        ...
        ValueError: ndocs must be a finite number in 1…, got inf
        >>> Param("k", int, 10, "results", low=1).validate(10**30)
        Traceback (most recent call last):
        ...
        ValueError: k must be <= 2147483647 (2**31 - 1) in 1…, got 1000000000000000000000000000000
        """
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"{self.name} must not be None")
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{self.name} must be a number{self._range_text()}, got {value!r}")
            if isinstance(value, (float, np.floating)) and not math.isfinite(value):
                raise ValueError(f"{self.name} must be a finite number{self._range_text()}, got {value!r}")
            if self.type is int and isinstance(value, (float, np.floating)) and not float(value).is_integer():
                raise ValueError(f"{self.name} must be a whole number{self._range_text()}, got {value!r}")
            value = self.type(value)
            if self.type is int and self.high is None and value > MAX_INT:
                raise ValueError(
                    f"{self.name} must be <= {MAX_INT} (2**31 - 1){self._range_text()}, got {value}"
                )
            if self.type is int and self.low is None and value < -MAX_INT:
                raise ValueError(f"{self.name} must be >= {-MAX_INT}{self._range_text()}, got {value}")
            if self.low is not None and value < self.low:
                raise ValueError(f"{self.name} must be >= {self.low:g}, got {value:g}")
            if self.high is not None and value > self.high:
                raise ValueError(f"{self.name} must be <= {self.high:g}, got {value:g}")
        elif not isinstance(value, self.type):
            raise ValueError(f"{self.name} must be of type {self.type.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
        return value


def validate(declared: Mapping[str, Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``values`` against ``declared``; fill defaults; reject unknown names.

    >>> knobs = {"k": Param("k", int, 10, "results", low=1)}
    >>> validate(knobs, {})
    {'k': 10}
    >>> validate(knobs, {"kk": 3})
    Traceback (most recent call last):
    ...
    ValueError: unknown setting 'kk'; known: k
    """
    unknown = set(values) - set(declared)
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}; known: {', '.join(declared)}")
    return {name: p.validate(values[name]) if name in values else p.default for name, p in declared.items()}


def markdown_table(declared: Mapping[str, Param]) -> str:
    """A README table of the knobs: default, range, and which way each moves latency, memory, quality."""
    arrows = {"up": "↑", "down": "↓", "": "–"}
    rows = [
        "| knob | default | range | raising it: latency | memory | quality | same knob elsewhere | what it does |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in declared.values():
        if p.choices:
            rng = ", ".join(map(str, p.choices))
        elif p.low is not None or p.high is not None:
            # a bound at the int32 limit only says "a whole number": written as open-ended
            high = None if p.high is None or p.high >= 2**31 - 1 else p.high
            rng = f"{'' if p.low is None else f'{p.low:g}'}…{'' if high is None else f'{high:g}'}"
        else:
            rng = ""
        rows.append(
            f"| `{p.name}` | {'auto' if p.default is None else p.default} | {rng} | {arrows[p.latency]} | {arrows[p.memory]} | "
            f"{arrows[p.quality]} | {p.aliases} | {p.description} |"
        )
    return "\n".join(rows)
