"""The frozen prompts: what a ledger's prompt id and sha256 refer to.

A format-level module, not a runner one: the runner sends these texts, and
the relational export fills a prompt's text in from its recorded hash, so
both read the same file (``prompts.yaml``, section 3 of the reference).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from sitegen.exceptions import Problem, RunnerError
from sitegen.yamlfile import load_yaml, problem_at, raise_problems

PROMPT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: The canonical P-EASY / P-MEDIUM / P-HARD.
DEFAULT_PROMPTS = Path(__file__).with_name("prompts.yaml")


@dataclass(frozen=True)
class Prompt:
    """A frozen prompt: its text never changes once published under its id."""

    id: str
    text: str
    max_tokens: int
    intent: str | None = None

    @property
    def sha256(self) -> str:
        """Hex digest of the UTF-8 text, recorded so edits are detectable."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_prompts(path: Path | None = None) -> list[Prompt]:
    """Read a prompts file: ``ID: {prompt: |, max_tokens: N, intent: ...}``.

    Without a path, the canonical P-EASY / P-MEDIUM / P-HARD are used.
    """
    path = path or DEFAULT_PROMPTS
    data = load_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("prompts"), dict):
        data = data["prompts"]
    if not isinstance(data, dict) or not data:
        raise RunnerError(f"{path}: expected a mapping of prompt id to prompt")
    problems: list[Problem] = []
    prompts: list[Prompt] = []
    for pid, spec in data.items():
        if not isinstance(pid, str) or not PROMPT_ID_RE.match(pid):
            problems.append(problem_at(path, data, pid, f"bad prompt id {pid!r}"))
            continue
        if not isinstance(spec, dict):
            problems.append(problem_at(path, data, pid, f"{pid}: expected a mapping"))
            continue
        text = spec.get("prompt")
        max_tokens = spec.get("max_tokens")
        if not isinstance(text, str) or not text.strip():
            problems.append(problem_at(path, spec, "prompt", f"{pid}: 'prompt' must be text"))
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            problems.append(
                problem_at(path, spec, "max_tokens", f"{pid}: 'max_tokens' must be an integer >= 1")
            )
        intent = spec.get("intent")
        if isinstance(text, str) and text.strip() and isinstance(max_tokens, int):
            prompts.append(
                Prompt(pid, text, max_tokens, intent if isinstance(intent, str) else None)
            )
    raise_problems(problems)
    return prompts


def select_prompts(prompts: list[Prompt], wanted: tuple[str, ...]) -> list[Prompt]:
    """Keep only the named prompt ids, in file order."""
    if not wanted:
        return prompts
    known = {p.id for p in prompts}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise RunnerError(f"unknown prompt id(s): {', '.join(missing)}")
    return [p for p in prompts if p.id in wanted]
