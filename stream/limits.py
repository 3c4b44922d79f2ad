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

    max_message_bytes: int = Field(4 * 1024 * 1024, gt=0, description="largest message, in bytes")
    max_json_depth: int = Field(
        32, ge=4, description="deepest nesting of a message's JSON (a task message needs 4 levels)")
    max_number_chars: int = Field(64, gt=0, description="longest number in a message's JSON, in characters")
    max_train_examples: int = Field(10_000, gt=0, description="train examples in one task")
    max_eval_examples: int = Field(5_000, gt=0, description="eval examples in one task")
    max_field_chars: int = Field(4_000, gt=0, description="longest text field (input, output, instruction)")
    max_labels: int = Field(64, ge=2, description="labels in one task")
    on_oversize: Literal["truncate", "reject"] = Field(
        "truncate", description="content over a limit: truncate (cut and sample down, reported) | reject")
    sample_seed: int = Field(0, description="seeds the down-sampling of an oversized split")
    allowed_data_roots: tuple[Path, ...] = Field(
        (), description="folders that `data.train` / `data.eval` files may come from (empty: none allowed)")
    max_data_file_bytes: int = Field(256 * 1024 * 1024, gt=0, description="largest data file, in bytes")
    max_data_line_bytes: int = Field(
        1024 * 1024, gt=0, description="longest JSONL row of a data file, in bytes")
