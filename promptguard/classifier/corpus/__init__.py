"""The classifier's training corpus: public data, the dev set, synthetic attacks
and hard benign negatives, deduplicated, each row tagged with source and licence."""

from .build import BUILDER_VERSION, SOURCE_ORDER, CorpusInfo, build_corpus
from .dedup import DedupReport, deduplicate, near_duplicate_pairs
from .rows import KINDS, CorpusError, Row, normalise, read_rows, write_rows

__all__ = [
    "BUILDER_VERSION", "SOURCE_ORDER", "CorpusInfo", "build_corpus", "DedupReport", "deduplicate",
    "near_duplicate_pairs", "KINDS", "CorpusError", "Row", "normalise", "read_rows", "write_rows",
]
