"""What a task message may hold (`stream.limits`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    """What a message may hold, and what happens to what is over (`stream.limits`).

    Structure is checked strictly: bytes, JSON depth and number sizes, the task id, labels,
    data files. Content that is merely too big follows `on_oversize`: `truncate` (the
    default) cuts a field to `max_field_chars` and samples a split down to its maximum
    (seeded, label-stratified), and the task says what was cut; `reject` dead-letters it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_message_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_json_depth: int = Field(32, ge=4)  # a task message needs 4 levels
    max_number_chars: int = Field(64, gt=0)
    max_train_examples: int = Field(10_000, gt=0)
    max_eval_examples: int = Field(5_000, gt=0)
    max_field_chars: int = Field(4_000, gt=0)
    max_labels: int = Field(64, ge=2)
    on_oversize: Literal["truncate", "reject"] = "truncate"
    sample_seed: int = 0  # seeds the down-sampling of an oversized split
    allowed_data_roots: tuple[Path, ...] = ()
    max_data_file_bytes: int = Field(256 * 1024 * 1024, gt=0)
    max_data_line_bytes: int = Field(1024 * 1024, gt=0)  # one JSONL row
