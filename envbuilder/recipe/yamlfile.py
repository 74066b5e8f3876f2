"""YAML with line numbers: `yaml.safe_load` semantics, but every mapping and list remembers
where it and each of its entries came from, so model errors can say file:line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from envbuilder.errors import RecipeError


class LineDict(dict):  # type: ignore[type-arg]
    """A YAML mapping; `line` is where it starts, `key_lines[k]` where key k is written."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):  # type: ignore[type-arg]
    """A YAML sequence; `item_lines[i]` is the line of item i."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers and reject duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise RecipeError("a mapping key must be a plain value", line=key_node.start_mark.line + 1) from None
        if key in result:
            raise RecipeError(
                f"duplicate key {key!r} (first written on line {result.key_lines[key]})",
                line=key_node.start_mark.line + 1,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same constructors (line numbers, duplicate keys) over libyaml's parser where PyYAML
    has it: ten times faster for large data files such as the diagnose catalogue."""


_FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def loads(text: str, file: Path | str | None = None, *, fast: bool = False) -> Any:
    """Parse one YAML document. Any failure becomes a RecipeError naming file and line."""
    try:
        return yaml.load(text, Loader=_FastLoader if fast else _Loader)  # noqa: S506 - both are SafeLoaders
    except RecipeError as exc:
        raise RecipeError(exc.message, file=file, line=exc.line, hint=exc.hint) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise RecipeError(f"YAML syntax error: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"YAML error: {exc}", file=file) from None
    except RecursionError:
        raise RecipeError("YAML nesting is too deep", file=file) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. an impossible date such as 2024-13-40, which SafeLoader turns into a datetime
        raise RecipeError(f"YAML value cannot be read: {exc}", file=file) from None


def load(path: Path, *, fast: bool = False) -> tuple[Any, str]:
    """Parse a YAML file; returns (data, sha256 of the file's bytes)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"cannot read file: {exc.strerror}", file=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecipeError("file is not UTF-8 text", file=path, line=line) from None
    return loads(text, path, fast=fast), hashlib.sha256(data).hexdigest()
