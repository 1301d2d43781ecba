"""Thin adapters to existing engines: each one is an optional extra and imports it only when used.

* :mod:`lirlab.integrations.ray`: encode a corpus on a Ray cluster (``pip install 'lirlab[ray]'``).
"""
