"""axc: an open MLIR-style compiler from Hugging Face decoder LLMs to AXERA .axmodel files."""

from __future__ import annotations

__version__ = "0.1.0"
