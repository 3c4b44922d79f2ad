"""FAISS index kinds behind a small registry; every kind is wrapped in `IndexIDMap2`.

Vectors are L2-normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from synlearner.memory.base import Vectors
from synlearner.stream.io import write_with


def _flat(dim: int) -> faiss.Index:
    return faiss.IndexFlatIP(dim)


def _hnsw(dim: int) -> faiss.Index:
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 64
    return index


INDEX_KINDS: dict[str, Callable[[int], faiss.Index]] = {"flat": _flat, "hnsw": _hnsw}


def build_index(kind: str, dim: int) -> faiss.IndexIDMap2:
    try:
        inner = INDEX_KINDS[kind](dim)
    except KeyError:
        raise ValueError(
            f"memory.index: unknown kind {kind!r} (known: {sorted(INDEX_KINDS)})"
        ) from None
    return faiss.IndexIDMap2(inner)


def add_vectors(index: faiss.IndexIDMap2, ids: list[int], vectors: Vectors) -> None:
    if ids:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, "int64"))


def remove_ids(index: faiss.IndexIDMap2, ids: list[int]) -> bool:
    """Remove ids in place; False when the inner index cannot remove (HNSW): rebuild then."""
    try:
        index.remove_ids(np.asarray(ids, dtype="int64"))  # type: ignore[arg-type]  # the wrapper takes id arrays
    except RuntimeError:
        return False
    return True


def search(
    index: faiss.IndexIDMap2, queries: Vectors, k: int, allowed: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if allowed is None:
        return index.search(queries, k)
    selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype="int64"))
    if _is_hnsw(index):
        params = faiss.SearchParametersHNSW(sel=selector)  # type: ignore[attr-defined]  # not in faiss's stubs
    else:
        params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]  # SWIG takes keyword args
    return index.search(queries, k, params=params)


def exact_search(query: Vectors, ids: list[int], vecs: Vectors,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-`k` of `query` over (`ids`, `vecs`), FAISS-shaped (-1 pads)."""
    scores = query @ vecs.T if ids else np.zeros((len(query), 0), dtype=np.float32)
    kk = min(k, len(ids))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    out_ids = np.full((len(query), k), -1, dtype=np.int64)
    out_scores = np.full((len(query), k), -np.inf, dtype=np.float32)
    out_ids[:, :kk] = np.asarray(ids, dtype=np.int64)[order]
    out_scores[:, :kk] = np.take_along_axis(scores, order, axis=1)
    return out_scores, out_ids


def _is_hnsw(index: faiss.IndexIDMap2) -> bool:
    return isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW)


def write_snapshot(index: faiss.IndexIDMap2, path: Path) -> None:
    """Write the index to `path` atomically (temp file, fsync, rename, fsync dir)."""
    write_with(path, lambda tmp: faiss.write_index(index, str(tmp)))


def read_snapshot(path: Path) -> faiss.IndexIDMap2 | None:
    if not path.exists():
        return None
    try:
        index = faiss.downcast_index(faiss.read_index(str(path)))
    except RuntimeError:  # torn or foreign file: the caller rebuilds from SQLite
        return None
    return index if isinstance(index, faiss.IndexIDMap2) else None
