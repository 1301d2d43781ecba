"""Matplotlib figures of analysis results; they compute nothing of their own."""
