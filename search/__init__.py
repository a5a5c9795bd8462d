"""Hybrid keyword + semantic search over your own documents, with highlighted evidence."""

from __future__ import annotations

from .errors import SearchError
from .index import DEFAULT_INDEX, BuildReport, Index, build_index
from .types import Chunk, Document, Evidence, Result

__all__ = [
    "DEFAULT_INDEX",
    "BuildReport",
    "Chunk",
    "Document",
    "Evidence",
    "Index",
    "Result",
    "SearchError",
    "build_index",
]
__version__ = "0.1.0"
