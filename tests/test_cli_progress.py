"""`oversight run`'s progress bar: generated tokens and tokens/s from the backends' counters."""

from __future__ import annotations

from types import SimpleNamespace

from rich.progress import Progress

from oversight.backends._batching import BatchStats
from oversight.cli.run import TokenRateColumn


def test_token_rate_reads_the_counters_live_and_counts_a_shared_backend_once() -> None:
    stats = BatchStats()
    shared = SimpleNamespace(stats=stats)
    other = SimpleNamespace(stats=BatchStats(tokens=50))
    column = TokenRateColumn([shared, shared, other, SimpleNamespace()])
    clock = [100.0]
    with Progress(disable=True, get_time=lambda: clock[0]) as progress:
        progress.add_task("episodes", total=4)  # started at t=100
        task = progress.tasks[0]
        assert column.render(task).plain == "50 tokens - tok/s"
        stats.tokens = 1950  # a batch finished since the last refresh
        clock[0] = 110.0
        assert column.render(task).plain == "2,000 tokens 200 tok/s"


def test_no_column_text_without_counting_backends() -> None:
    column = TokenRateColumn([SimpleNamespace()])
    with Progress(disable=True) as progress:
        progress.add_task("episodes", total=1)
        assert column.render(progress.tasks[0]).plain == ""
