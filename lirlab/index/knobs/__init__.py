"""The declared knobs of the index kinds, one module per kind, in modules that import no torch.

The command line's ``--help``, the docs' knob tables and the registry (:mod:`lirlab.index.registry`)
read these declarations without loading the kinds themselves; each kind's class exposes the same
objects as ``SEARCH_PARAMS`` and ``BUILD_PARAMS``. PLAID's live in its own package
(:mod:`lirlab.index.plaid.knobs`), beside the defaults it derives from ``k``.
"""
