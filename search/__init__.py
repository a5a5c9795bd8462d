"""Hybrid keyword + semantic search over your own documents, with highlighted evidence."""

from __future__ import annotations

from .check import Check, check_index
from .errors import SearchError
from .filters import Filters
from .index import DEFAULT_INDEX, BuildReport, Index, build_index
from .manifest import Manifest, Scoring
from .params import FusionName, ModeName, SearchParams, SyntaxName
from .searcher import Searcher
from .sharded import open_index
from .sharding import build_sharded
from .types import Chunk, Document, Evidence, Result
from .writer import compact_index, remove_documents

__all__ = [
    "DEFAULT_INDEX",
    "BuildReport",
    "Check",
    "Chunk",
    "Document",
    "Evidence",
    "Filters",
    "FusionName",
    "Index",
    "Manifest",
    "ModeName",
    "Result",
    "Scoring",
    "SearchError",
    "SearchParams",
    "Searcher",
    "SyntaxName",
    "build_index",
    "build_sharded",
    "check_index",
    "compact_index",
    "open_index",
    "remove_documents",
]
__version__ = "0.1.0"
