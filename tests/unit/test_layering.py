"""Package boundaries: only learner/ imports the ML stack; lower packages never import upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ML = ("torch", "transformers", "peft", "trl", "datasets", "safetensors", "accelerate")
FORBIDDEN = {
    "stream": ML + ("synlearner.daemon", "synlearner.learner", "synlearner.memory", "faiss"),
    "memory": ML + ("synlearner.daemon", "synlearner.learner", "synlearner.stream"),
    "daemon": ML,
}
# the one shared leaf module: durable writes, standard library only
ALLOWED = {"synlearner.stream.io"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_inside_their_layer(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        bad = {n for n in imports(path) - ALLOWED
               for f in FORBIDDEN[package] if n == f or n.startswith(f + ".")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_shared_io_module_needs_only_the_standard_library() -> None:
    assert {n.split(".")[0] for n in imports(ROOT / "stream" / "io.py")} <= {
        "__future__", "os", "shutil", "tempfile", "collections", "pathlib"}


def test_learner_interface_module_is_torch_free() -> None:
    assert not {n for n in imports(ROOT / "learner" / "base.py") if n.split(".")[0] in ML}
