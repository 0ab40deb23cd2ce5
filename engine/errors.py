"""The one exception type for problems a person can fix: each line names the field and the rule."""


class LLMLabError(Exception):
    """A user-facing error carrying one readable line per problem."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
