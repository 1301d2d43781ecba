"""The demo page set: 40 page images lirlab rendered from the demo corpus (see ``make.py`` and README.md)."""
