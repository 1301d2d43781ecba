"""Packages whose public names are imported on first use (PEP 562), so that importing the package, listing
its names or reading its torch-free parts (knob declarations, the registry) loads no torch.

>>> import lirlab.index
>>> "FlatIndex" in dir(lirlab.index)
True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : Mapping[str, str]
        Each public name -> ``"module:attribute"`` defining it, or the name of a sub-module of ``package``
        that defines it under the same name. A name is imported when first used, then kept.
    """

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        if not attribute:
            module, attribute = f"{package}.{module}", name
        value = getattr(importlib.import_module(module), attribute)
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
