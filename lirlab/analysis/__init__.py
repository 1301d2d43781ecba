"""Analyses of late interaction: each returns tidy data (DataFrames, small frozen records)."""
