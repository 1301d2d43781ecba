"""ipywidgets explorers: thin views over the analysis functions."""
