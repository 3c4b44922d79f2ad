from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synlearner.memory import ExperienceMemory, HashingEmbedder, Record, TaskInfo
from synlearner.memory.config import MemoryConfig, SimilarityConfig
from synlearner.memory.records import read_counts

EMB = HashingEmbedder(128)
FOOD = ["the pasta was great", "awful soup and cold bread", "lovely dessert", "the wine was sour"]
TECH = ["the battery died fast", "great screen and speakers", "the charger broke", "fast chip"]


def fill(mem: ExperienceMemory) -> None:
    for task_id, texts in (("food", FOOD), ("tech", TECH)):
        mem.register_task(TaskInfo(task_id, "classification", "?", ("pos", "neg"), 4), texts)
        recs = [Record(task_id, t, "pos" if i % 2 == 0 else "neg", split="train",
                       prediction="pos", correct=i % 2 == 0, timestamp=float(i))
                for i, t in enumerate(texts)]
        recs += [Record(r.task_id, r.input, r.target, "error", r.split, r.prediction, False)
                 for r in recs if not r.correct]
        mem.add(recs)


@pytest.fixture(params=["flat", "hnsw"])
def mem(request: pytest.FixtureRequest, tmp_path: Path) -> ExperienceMemory:
    m = ExperienceMemory(tmp_path, EMB, index_kind=request.param)
    fill(m)
    return m


def test_add_and_search(mem: ExperienceMemory) -> None:
    assert mem.counts() == {"experience": 8, "error": 4, "records": 12, "tasks": 2, "indexed": 12}
    hits = mem.search(EMB.embed(["the pasta was great"]), k=3)[0]
    assert hits[0].record.input == "the pasta was great" and hits[0].score > 0.99
    only_tech = mem.search(EMB.embed(["the pasta was great"]), k=10, task_id="tech")[0]
    assert {h.record.task_id for h in only_tech} == {"tech"} and len(only_tech) == 6
    errors = mem.search(EMB.embed(["cold bread"]), k=10, kind="error")[0]
    assert {h.record.input for h in errors} == {"awful soup and cold bread", "the wine was sour",
                                                "great screen and speakers", "fast chip"}
    others = mem.search(EMB.embed(["lovely dessert"]), k=10, exclude_task="food")[0]
    assert {h.record.task_id for h in others} == {"tech"}


def test_similar_tasks(mem: ExperienceMemory) -> None:
    asks = TaskInfo("new", "classification", "?", ("pos", "neg"), 2)  # as both past tasks
    ranked = mem.similar_tasks(asks, ["great pasta and dessert", "cold soup"], k=2)
    assert [t for t, _ in ranked] == ["food", "tech"] and ranked[0][1] > ranked[1][1]
    assert [t for t, _ in mem.similar_tasks(asks, FOOD, k=5, exclude="food")] == ["tech"]
    info = mem.task_info("tech")
    assert info is not None and info.labels == ("pos", "neg")


def test_restart_finds_sqlite_and_faiss_consistent(mem: ExperienceMemory, tmp_path: Path) -> None:
    mem.flush()
    kind = mem.index_kind
    mem.close()
    again = ExperienceMemory(tmp_path, EMB, index_kind=kind)
    assert again.counts()["indexed"] == 12
    assert again.search(EMB.embed(["fast chip"]), 1)[0][0].record.input == "fast chip"
    # a write that reached SQLite but not the snapshot (crash before flush): rebuilt on open
    again.add([Record("tech", "the keyboard rattles", "neg")])
    again.close()
    meta = json.loads((tmp_path / "index.json").read_text())
    third = ExperienceMemory(tmp_path, EMB, index_kind=kind)
    assert json.loads((tmp_path / "index.json").read_text()) == meta  # snapshot is stale...
    assert third.counts()["indexed"] == 13  # ...so the index was rebuilt from SQLite
    hit = third.search(EMB.embed(["the keyboard rattles"]), 1)[0][0]
    assert hit.record.input == "the keyboard rattles"


def test_torn_snapshot_is_rebuilt(mem: ExperienceMemory, tmp_path: Path) -> None:
    mem.flush()
    mem.close()
    (tmp_path / "index.faiss").write_bytes(b"garbage")
    again = ExperienceMemory(tmp_path, EMB, index_kind=mem.index_kind)
    assert again.counts()["indexed"] == 12
    assert read_counts(tmp_path)["records"] == 12


def test_forget_task_and_eviction_keeps_errors_longest(tmp_path: Path) -> None:
    mem = ExperienceMemory(tmp_path, EMB, capacity=6)
    fill(mem)
    counts = mem.counts()
    assert counts["records"] == 6 and counts["error"] == 4  # every error survived
    assert mem.forget_task("food") > 0
    assert {r.task_id for r in mem.records()} == {"tech"} and mem.task_info("food") is None
    assert mem.counts()["indexed"] == mem.counts()["records"]


def test_dimension_mismatch_is_a_clear_error(mem: ExperienceMemory, tmp_path: Path) -> None:
    mem.close()
    with pytest.raises(ValueError, match="dim 128"):
        ExperienceMemory(tmp_path, HashingEmbedder(64))


def test_hashing_embedder_is_normalised_and_deterministic() -> None:
    v = EMB.embed(["a b c", "a b c", ""])
    assert np.allclose(np.linalg.norm(v[:2], axis=1), 1.0) and np.array_equal(v[0], v[1])
    assert v.dtype == np.float32 and v.shape == (3, 128)


RATINGS = ("very negative", "negative", "neutral", "positive", "very positive")


def _titled(rows: list[tuple[str, str]]) -> list[str]:
    return [f"Title: {title}\nText: {text}" for title, text in rows]


def test_similarity_is_by_what_a_task_asks_not_by_the_layout_of_its_inputs(
        tmp_path: Path) -> None:
    """A product-rating task and a news-topic task share the `Title: … Text:` layout; a
    restaurant-rating task asks the product task's question in plain text. The product
    task's nearest past task is the restaurant one, although by inputs alone it is not."""
    products = TaskInfo("products", "classification", "How positive is this product review?",
                        RATINGS, 4)
    news = TaskInfo("news", "classification", "What is the topic of this news article?",
                    ("World", "Sports", "Business", "Science or Technology"), 4)
    restaurants = TaskInfo("restaurants", "classification",
                           "How positive is this restaurant review?", RATINGS, 4)
    inputs = {
        "products": _titled([("Broke fast", "The kettle stopped working after a week."),
                             ("Love it", "Sturdy blender, makes smoothies in seconds."),
                             ("Meh", "The lamp is fine, nothing special about it."),
                             ("Terrible", "Headphones crackle and the cable frayed.")]),
        "news": _titled([("Markets rally", "Stocks rose on Tuesday as banks reported gains."),
                         ("Cup final", "The striker scored twice in the second half."),
                         ("Summit ends", "Leaders agreed on a climate plan in Geneva."),
                         ("New chip", "The company unveiled a faster processor today.")]),
        "restaurants": ["The waiter forgot us and the soup was cold.",
                        "Great pasta, friendly staff, we will return.",
                        "Average pizza, long wait, decent prices.",
                        "Burnt steak and a rude manager."],
    }
    by_inputs = ExperienceMemory(tmp_path / "inputs", EMB, MemoryConfig(
        similarity=SimilarityConfig(instruction=0, labels=0, inputs=1)))
    described = ExperienceMemory(tmp_path / "described", EMB)
    for memory in (by_inputs, described):
        for info in (restaurants, news):
            memory.register_task(info, inputs[info.task_id])
    layout_only = by_inputs.similar_tasks(products, inputs["products"], k=2)
    ranked = described.similar_tasks(products, inputs["products"], k=2)
    assert layout_only[0][0] == "news"  # the shared layout dominates the input centroids
    assert ranked[0][0] == "restaurants" and ranked[0][1] > ranked[1][1] + 0.1, ranked
    described.register_task(products, inputs["products"])
    ids, matrix = described.task_similarity()
    assert ids == ["news", "products", "restaurants"]
    assert [matrix[i][i] for i in range(3)] == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)
    assert matrix[2][1] == matrix[1][2] > matrix[2][0]
