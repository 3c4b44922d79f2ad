"""What the generation benches share: their common arguments and the first task of the
bundled generative stream."""

from __future__ import annotations

import argparse
import json

from synlearner.bench.streams.generative import generation_stream
from synlearner.stream.schema import Limits, Task, parse_task


def arguments(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2", help="smollm2, tiny, or a model folder")
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output folder")
    return ap


def first_task() -> tuple[dict, Task]:  # type: ignore[type-arg]
    """The first task of the bundled generative stream: its message and the parsed task."""
    message = generation_stream()[0]
    return message, parse_task(json.dumps(message).encode(), Limits())

