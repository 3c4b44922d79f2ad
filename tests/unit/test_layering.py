"""Package boundaries: only learner/ imports the ML stack; lower packages never import upward;
the service's packages never import the benchmark (`bench/` may import them all)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ML = ("torch", "transformers", "peft", "trl", "datasets", "safetensors", "accelerate")
BENCH = "synlearner.bench"
FORBIDDEN = {
    "stream": ML + ("synlearner.daemon", "synlearner.learner", "synlearner.memory", "faiss", BENCH),
    "memory": ML + ("synlearner.daemon", "synlearner.learner", "synlearner.stream", BENCH),
    "daemon": ML + (BENCH,),
    "learner": (BENCH,),
}
# the one shared leaf module: durable writes, standard library only
ALLOWED = {"synlearner.stream.io"}
# `synlearner bench` is a subcommand of the one command line: these functions of the CLI hand
# over to the benchmark, importing it inside their bodies so the service never loads it
BENCH_ENTRY = ("daemon/tools/cli.py", ("cmd_bench", "_stream"))


def imports(path: Path) -> set[str]:
    return {name for node in ast.walk(ast.parse(path.read_text())) for name in _names(node)}


def _is_bench(name: str) -> bool:
    return name == BENCH or name.startswith(BENCH + ".")


def _outside_bench_entry(path: Path) -> set[str]:
    """The imports of `path`, leaving out those inside the CLI's benchmark functions."""
    rel, functions = BENCH_ENTRY
    if path != ROOT / rel:
        return imports(path)
    tree = ast.parse(path.read_text())
    entry = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in functions]
    assert {f.name for f in entry} == set(functions), f"{rel} lost {functions}"
    inside = {id(n) for f in entry for n in ast.walk(f)}
    return {name for node in ast.walk(tree) if id(node) not in inside
            for name in _names(node)}


def _names(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return {node.module}
    return set()


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_inside_their_layer(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        names = _outside_bench_entry(path) | {n for n in imports(path) if not _is_bench(n)}
        bad = {n for n in names - ALLOWED
               for f in FORBIDDEN[package] if n == f or n.startswith(f + ".")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_the_cli_bench_command_imports_the_benchmark() -> None:
    """The exception above stays small: the CLI's benchmark imports are the bench's and
    nothing of the benchmark is imported by the service's modules at all."""
    rel, _ = BENCH_ENTRY
    importers = sorted(str(p.relative_to(ROOT)) for package in FORBIDDEN
                       for p in (ROOT / package).rglob("*.py")
                       if any(_is_bench(n) for n in imports(p)))
    assert importers == [rel]


def test_the_shared_io_module_needs_only_the_standard_library() -> None:
    assert {n.split(".")[0] for n in imports(ROOT / "stream" / "io.py")} <= {
        "__future__", "os", "shutil", "tempfile", "collections", "pathlib"}


def test_learner_interface_module_is_torch_free() -> None:
    assert not {n for n in imports(ROOT / "learner" / "base.py") if n.split(".")[0] in ML}
