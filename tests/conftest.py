"""The whole suite's collection order: the slowest test files first, so that pytest-xdist's
`--dist loadfile` (pyproject addopts) hands them out while both workers are free and the many
short files fill in at the end, instead of one worker finishing a long file alone. Within a file,
and among the rest, the order stays pytest's."""

from __future__ import annotations

SLOWEST_FIRST = (  # measured with --durations on the 2-core VM, 2026-12-02
    "llmlab_tui/test_in_terminal.py",
    "llmlab_tui/test_form_keys.py",
    "engine/bench/test_pipeline.py",
    "llmlab_tui/test_tools.py",
    "llmlab_tui/test_inspect_screen.py",
    "llmlab_tui/test_run_lifecycle.py",
    "llmlab_tui/test_stages.py",
    "llmlab_tui/test_real_run.py",
    "llmlab_tui/test_bench_tui.py",
    "engine/test_sharding.py",
    "engine/test_ddp.py",
    "engine/test_faults.py",
)


def pytest_collection_modifyitems(items) -> None:
    def rank(item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(SLOWEST_FIRST) if path.endswith(f"tests/{name}")), len(SLOWEST_FIRST))

    items.sort(key=rank)  # stable: each file's own order kept
