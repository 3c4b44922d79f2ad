"""Continual-learning metrics from the accuracy matrix (GEM; Chaudhry et al. 2018).

`R[i][j]` is the score on task j's eval set after learning tasks 0..i (0-based here),
`b[j]` the score of the base model before any training on task j. Entries not yet
observable are `None` (or absent: rows may be ragged). `R[j-1][j]` is the score of task
j's adapter as initialised (fresh, or copied from the nearest past task) before training
on j.

With T tasks (the last row T-1):
    ACC = mean_j R[T-1][j]
    BWT = mean_{j<T-1} (R[T-1][j] - R[j][j])
    FWT = mean_{j>0} (R[j-1][j] - b[j])
    forgetting_j = max_{l<T-1} R[l][j] - R[T-1][j], averaged over j < T-1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Matrix = Sequence[Sequence[float | None]]


@dataclass(frozen=True)
class TransferMetrics:
    tasks: int
    acc: float
    bwt: float
    fwt: float
    forgetting: float

    def as_dict(self) -> dict[str, float]:
        return {"acc": self.acc, "bwt": self.bwt, "fwt": self.fwt, "forgetting": self.forgetting}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _get(R: Matrix, i: int, j: int) -> float:
    value = R[i][j] if j < len(R[i]) else None
    if value is None:
        raise ValueError(f"accuracy matrix: R[{i}][{j}] is needed but missing")
    return float(value)


def transfer_metrics(R: Matrix, b: Sequence[float]) -> TransferMetrics:
    T = len(R)
    if T == 0:
        return TransferMetrics(0, 0.0, 0.0, 0.0, 0.0)
    if len(b) < T:
        raise ValueError(f"accuracy matrix: {T} tasks but {len(b)} baseline scores")
    last = T - 1
    acc = _mean([_get(R, last, j) for j in range(T)])
    bwt = _mean([_get(R, last, j) - _get(R, j, j) for j in range(last)])
    fwt = _mean([_get(R, j - 1, j) - float(b[j]) for j in range(1, T)])
    forgetting = _mean(
        [max(_get(R, row, j) for row in range(j, last)) - _get(R, last, j) for j in range(last)]
    )
    return TransferMetrics(T, acc, bwt, fwt, forgetting)


def sparse_transfer_metrics(R: Matrix, b: Sequence[float]) -> TransferMetrics | None:
    """The same metrics over the cells that were measured (rows scored only now and then,
    as the task-agnostic matrix is): ACC over the last measured row; BWT against the first
    measured score of each task; FWT where the score before training was measured;
    forgetting over the measured rows. On a full matrix it equals `transfer_metrics`.
    None when no row was measured."""
    def cell(i: int, j: int) -> float | None:
        value = R[i][j] if j < len(R[i]) else None
        return None if value is None else float(value)

    measured = [i for i, row in enumerate(R) if any(v is not None for v in row)]
    if not measured:
        return None
    last = measured[-1]
    final = {j: v for j in range(last + 1) if (v := cell(last, j)) is not None}
    bwt, forgetting = [], []
    for j, now in final.items():
        earlier = [v for i in measured if j <= i < last and (v := cell(i, j)) is not None]
        if earlier:
            bwt.append(now - earlier[0])
            forgetting.append(max(earlier) - now)
    fwt = [v - float(b[j]) for j in range(1, min(len(R), len(b)))
           if (v := cell(j - 1, j)) is not None]
    return TransferMetrics(len(final), _mean(list(final.values())), _mean(bwt), _mean(fwt),
                           _mean(forgetting))
