"""The memory's embedder over the classifier's base encoder (`BiEncoderClassifier.embedder`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from synlearner.memory.base import Vectors

if TYPE_CHECKING:
    from synlearner.learner.classifier import BiEncoderClassifier


class BaseEmbedder:
    """The memory's embedder: the base encoder with adapters disabled (stable vectors).

    The base model never trains (only adapters do), so a text's vector never changes: the
    last `cache_size` are kept by text, and the zero-shot scoring of a task and the memory's
    indexing of the same inputs share one forward pass."""

    def __init__(self, owner: BiEncoderClassifier, cache_size: int = 20_000) -> None:
        self._owner = owner
        self._dim = int(owner.bank.model.config.hidden_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        cache = self._cache
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            with self._owner.bank.use(None):
                vecs = self._owner._encode_all(missing).float().cpu().numpy()
            cache.update(zip(missing, vecs, strict=True))
        out = np.stack([cache[t] for t in texts]).astype(np.float32)
        for t in texts:
            cache.move_to_end(t)
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        return out
