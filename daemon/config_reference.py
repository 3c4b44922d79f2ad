"""The configuration reference, generated from the config models.

`defaults_yaml()` is every key at its default, as YAML with each key's help as a comment
above it (`synlearner config defaults`, shipped as `configs/default.yaml`);
`reference_markdown()` is the same as a table per section, with whether SIGHUP applies a
change (`synlearner config docs`, shipped as `docs/configuration.md`). A key's help is
its field's `description`, declared beside its default; nothing here names a key.
Secrets print as null, with a comment to set them from the environment.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, SecretBytes, SecretStr

from synlearner.daemon.config import ENV_PREFIX, LIVE_SETTINGS, Config


@dataclass(frozen=True)
class Entry:
    """One key of the config: a section (`model` is its class) or a setting (`value` is
    its default as YAML data; None for a secret)."""

    path: tuple[str, ...]
    help: str
    model: type[BaseModel] | None = None
    value: Any = None
    secret: bool = False

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return ENV_PREFIX + "__".join(p.upper() for p in self.path)

    @property
    def full_help(self) -> str:
        if self.secret:
            return f"{self.help}; secret: set `{self.env}` in the environment, not here"
        return self.help


def _is_secret(annotation: Any) -> bool:
    union = get_origin(annotation) in (Union, types.UnionType)
    return any(isinstance(a, type) and issubclass(a, (SecretStr, SecretBytes))
               for a in (get_args(annotation) if union else (annotation,)))


def entries(model: BaseModel | None = None, parent: tuple[str, ...] = ()) -> Iterator[Entry]:
    """Every key of `model` (default: the built-in `Config()`), depth first in the order
    the models declare them, a section before its keys."""
    model = Config() if model is None else model
    data = model.model_dump(mode="json")
    for name, field in type(model).model_fields.items():
        path, value, help_ = (*parent, name), getattr(model, name), field.description or ""
        if isinstance(value, BaseModel):
            yield Entry(path, help_, model=type(value))
            yield from entries(value, path)
        elif _is_secret(field.annotation):
            yield Entry(path, help_, secret=True)
        else:
            yield Entry(path, help_, value=data[name])


def yaml_value(value: Any) -> str:
    """`value` as one line of YAML (a list or mapping in flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 16)
    return text.removesuffix("\n").removesuffix("\n...")


def _blank_before(entry: Entry, prev: Entry | None) -> bool:
    """A blank line before each section, each top-level key and the key after a section
    ends; never right under a section's header."""
    if prev is not None and prev.model is not None:
        return False
    ends = prev is not None and len(entry.path) < len(prev.path)
    return entry.model is not None or len(entry.path) == 1 or ends


def defaults_yaml() -> str:
    """Every key at its default, as YAML, each under a comment with its help."""
    lines = [
        "# synlearner configuration: every key at its default, with what it does. Generated from",
        "# the code by `synlearner config defaults` (the reference: docs/configuration.md).",
        "# Every key is optional; unknown keys fail at start-up. Environment overrides:",
        f"# {ENV_PREFIX}<SECTION>__<KEY>=value, e.g. {ENV_PREFIX}DAEMON__HTTP__PORT=9500",
    ]
    prev: Entry | None = None
    for entry in entries():
        indent = "  " * (len(entry.path) - 1)
        if _blank_before(entry, prev):
            lines.append("")
        lines.append(f"{indent}# {entry.full_help}")
        value = "" if entry.model is not None else " " + yaml_value(entry.value)
        lines.append(f"{indent}{entry.path[-1]}:{value}")
        prev = entry
    return "\n".join(lines) + "\n"


def _md(text: str, cell: bool = False) -> str:
    """`text` as Markdown: `<` and `*` outside code spans escaped, and in a table cell `|`."""
    parts = text.split("`")
    parts[::2] = [part.replace("<", "&lt;").replace("*", "\\*") for part in parts[::2]]
    out = "`".join(parts)
    return out.replace("|", "\\|") if cell else out


def _about(model: type[BaseModel], help_: str) -> str:
    """What a section is, under its heading: its class's docstring, else its help."""
    doc = model.__dict__.get("__doc__")  # its own, not one inherited
    text = " ".join(inspect.cleandoc(doc).split()) if doc else help_
    return _md(text[:1].upper() + text[1:])


def reference_markdown() -> str:
    """The configuration reference: a table of settings per section."""
    sections: dict[tuple[str, ...], list[str]] = {(): []}
    heads: dict[tuple[str, ...], list[str]] = {(): ["## Top level", ""]}
    for entry in entries():
        if entry.model is not None:
            heads[entry.path] = [f"## `{entry.key}`", "", _about(entry.model, entry.help), ""]
            sections[entry.path] = []
            continue
        default = "null" if entry.secret else yaml_value(entry.value)
        live = "yes" if entry.key in LIVE_SETTINGS else "restart"
        cells = [f"`{entry.key}`", f"`{default}`", entry.full_help, live]
        sections[entry.path[:-1]].append("| " + " | ".join(_md(c, cell=True) for c in cells) + " |")
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from the config models by `synlearner config docs`; do not edit. -->",
        "",
        "One YAML file, given with `--config` (`configs/default.yaml` is every key at its "
        "default); every key is optional and unknown keys fail at start-up. Environment "
        f"variables override the file: `{ENV_PREFIX}<SECTION>__<KEY>=value`, e.g. "
        f"`{ENV_PREFIX}DAEMON__HTTP__PORT=9500` (a JSON array or object for a list or a "
        "mapping). Secrets belong in the environment, never in the file.",
        "",
        "SIGHUP (`systemctl reload synlearner`): a running daemon applies a change to a key "
        "marked *yes*; a change to any other is refused with a log line naming it and "
        "needs a restart.",
    ]
    for path, rows in sections.items():
        if not rows:
            continue
        out += ["", *heads[path], "| key | default | help | SIGHUP |", "|---|---|---|---|", *rows]
    return "\n".join(out) + "\n"
