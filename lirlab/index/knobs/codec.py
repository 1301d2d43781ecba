"""The choices of the residual codec (:mod:`lirlab.index.codec`) that PLAID's build knobs offer."""

from __future__ import annotations

#: Bits per dimension a residual may be quantized to.
NBITS_CHOICES = (1, 2, 4)

#: Precisions the centroids may be kept in (float16: rounded once, before the residuals are taken).
CENTROID_DTYPES = ("float32", "float16")
