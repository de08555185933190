"""YAML loading that remembers line numbers, so config errors point at the line.

The runner's inputs (cells, prompts, nodes) are small hand-edited files; an
error message of the form ``cells.yaml:12:5: unknown engine 'olama'`` saves a
user a search. Mappings load as :class:`LineDict`, which carries the line and
column of itself and of each key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sitegen.exceptions import Problem, RunnerError


class LineDict(dict[Any, Any]):
    """A dict that knows where it and each of its keys appeared in the file."""

    line: int | None = None
    column: int | None = None
    key_pos: dict[Any, tuple[int, int]]

    def pos(self, key: Any | None = None) -> tuple[int | None, int | None]:
        """(line, column) of ``key`` if given and present, else of the mapping."""
        if key is not None and key in getattr(self, "key_pos", {}):
            return self.key_pos[key]
        return self.line, self.column


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.column = node.start_mark.column + 1
    out.key_pos = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, "unhashable key", key_node.start_mark
            ) from exc
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_pos[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    """Parse ``path``; a missing file or a syntax error becomes a RunnerError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RunnerError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RunnerError(f"{path}: cannot read: {exc}") from exc
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = Problem(
            str(path),
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
            f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
        )
        raise RunnerError(str(problem)) from exc


def problem_at(path: Path, mapping: Any, key: Any | None, message: str) -> Problem:
    """A Problem located at ``key`` of ``mapping`` when the position is known."""
    if isinstance(mapping, LineDict):
        line, column = mapping.pos(key)
    else:
        line, column = None, None
    return Problem(str(path), line, column, message)


def raise_problems(problems: list[Problem]) -> None:
    """Raise one RunnerError listing every problem, if there are any."""
    if problems:
        raise RunnerError("\n".join(str(p) for p in sorted(problems)))
