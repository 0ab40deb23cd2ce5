"""Problems a person can fix: each names the field (a dotted path into project.toml, a file, a
command-line option) and the rule it breaks; `LLMLabError` carries them to whoever reports them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem: `str()` is the line the CLI prints ("field: message"). `also` names the other
    fields of a rule that spans several (the app shows it at each, whichever was edited)."""

    field: str
    message: str
    also: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class LLMLabError(Exception):
    """A user-facing error carrying one or more problems (a plain string is a whole line)."""

    def __init__(self, problems: str | Problem | list[str | Problem]):
        items = [problems] if isinstance(problems, (str, Problem)) else list(problems)
        self.problems = [p if isinstance(p, Problem) else Problem("", p) for p in items]
        super().__init__("\n".join(self.lines))

    @property
    def lines(self) -> list[str]:
        """The problems as the lines the CLI prints."""
        return [str(p) for p in self.problems]


class Diverged(LLMLabError):
    """A run stopped because its loss or gradient norm went non-finite; its `finished` event
    (status "diverged") has already said so, with what to try."""
