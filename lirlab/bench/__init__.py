"""Benchmarks: ``lirlab bench core`` and ``lirlab bench plaid``, saved as JSON with the machine described."""
