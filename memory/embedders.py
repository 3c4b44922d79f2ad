"""Embedders that need no model: used by fast tests and by `memory.embedder: hashing`.

`memory.embedder: model` embeds with the base encoder of the classification learner
(`BiEncoderClassifier.embedder`, in `learner/classifier.py`, which needs torch); the daemon's
builder hands it to the memory.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from synlearner.memory.base import Embedder, Vectors

_TOKEN = re.compile(r"[a-z0-9']+")


class HashingEmbedder:
    """Feature hashing of word unigrams and bigrams, signed, L2-normalised."""

    def __init__(self, dim: int = 256) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def _bucket(self, feature: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
        return h % self._dim, 1.0 if (h >> 63) & 1 else -1.0

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = _TOKEN.findall(text.lower())
            for feat in tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]:
                col, sign = self._bucket(feat)
                out[row, col] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normalised: Vectors = (out / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised


class EmbeddingCache:
    """An embedder's vectors for the last few lists of texts (a task's inputs are asked for
    several times while it is learned: similar tasks, replay, its profile)."""

    def __init__(self, embedder: Embedder, size: int = 8) -> None:
        self.embedder = embedder
        self.size = size
        self._recent: OrderedDict[tuple[str, ...], Vectors] = OrderedDict()

    def embed(self, texts: Sequence[str]) -> Vectors:
        key = tuple(texts)
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key]
        vectors = self.embedder.embed(list(texts))
        self._recent[key] = vectors
        while len(self._recent) > self.size:
            self._recent.popitem(last=False)
        return vectors
