"""One exception tree for the whole tool.

Library code raises these; the CLI turns them into a clear message and a
non-zero exit at the edge, so a user never sees a traceback for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can.

    Rendered as ``path:line:col: message`` (line and column when known), the
    form editors and terminals turn into links.
    """

    path: str
    line: int | None = None
    column: int | None = None
    message: str = ""

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class SitegenError(Exception):
    """Base of every error sitegen reports to a user."""


class ConfigError(SitegenError):
    """The archive settings file is invalid; carries every problem at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ValidationFailed(SitegenError):
    """The archive has invalid input; carries every problem found in one pass."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class BuildError(SitegenError):
    """The build could not complete for a reason other than invalid input."""


class RunnerError(SitegenError):
    """The runner refused to start or could not continue."""


class ImportFailed(SitegenError):
    """A source file given to ``sitegen import`` could not be imported."""
