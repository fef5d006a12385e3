"""The live display of a job on stderr: done / failed / in flight, rate, ETA, tokens and cost so far.

With ``rich`` (extra ``batch``) it is a progress bar redrawn four times a second; without it, one plain line every
10 seconds. Off by default when stderr is not a terminal (logs and pipes stay quiet). The display reads the job's
counts from a thread of its own, so the event loop that runs the requests never waits for the terminal.

Example:
    >>> from llmkit.batch.runner import Stats
    >>> stats = Stats(total=100, succeeded=40, failed=2, in_flight=8, tokens=1234)
    >>> line(stats).split(" | ")[:2]
    ['42/100 done (2 failed)', '8 in flight']
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmkit.batch.runner import Stats


def _rate(stats: Stats) -> float:
    elapsed = time.monotonic() - stats.started
    return stats.written / elapsed if elapsed > 0 else 0.0


def _eta(stats: Stats) -> str:
    rate = _rate(stats)
    if stats.total is None or rate <= 0:
        return "?"
    left = max(stats.total - stats.skipped - stats.written, 0) / rate
    return time.strftime("%H:%M:%S", time.gmtime(left))


def line(stats: Stats) -> str:
    """The plain progress line."""
    from llmkit.usage.cost import format_amount

    total = "?" if stats.total is None else str(stats.total)
    done = stats.written + stats.skipped
    return " | ".join(
        [
            f"{done}/{total} done ({stats.failed} failed)",
            f"{stats.in_flight} in flight",
            f"{_rate(stats):.1f} req/s",
            f"ETA {_eta(stats)}",
            f"{stats.tokens} tokens",
            format_amount(stats.cost),
        ]
    )


class Display:
    """A thread redrawing the job's progress until :meth:`stop`."""

    def __init__(self, stats: Stats, period: float) -> None:
        self.stats = stats
        self.period = period
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="llmkit-batch-progress", daemon=True)

    def start(self) -> Display:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopped.wait(self.period):
            self.draw()

    def draw(self) -> None:
        print(f"llmkit batch: {line(self.stats)}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        """Stop redrawing; draw the final state once."""
        self._stopped.set()
        self._thread.join()
        self.draw()
        self.close()

    def close(self) -> None:
        pass


class RichDisplay(Display):
    """The ``rich`` progress bar."""

    def __init__(self, stats: Stats, period: float) -> None:
        super().__init__(stats, period)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress: Any = Progress(
            TextColumn("[bold]llmkit batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            auto_refresh=False,
        )
        self._task = self._progress.add_task("batch", total=stats.total, detail="")
        self._progress.start()

    def draw(self) -> None:
        from llmkit.usage.cost import format_amount

        stats = self.stats
        detail = (
            f"[red]{stats.failed} failed[/] | {stats.in_flight} in flight | {_rate(stats):.1f} req/s | "
            f"ETA {_eta(stats)} | {stats.tokens} tokens | {format_amount(stats.cost)}"
        )
        self._progress.update(
            self._task, total=stats.total, completed=stats.written + stats.skipped, detail=detail, refresh=True
        )

    def close(self) -> None:
        self._progress.stop()


def start_display(stats: Stats, enabled: bool | None = None) -> Display | None:
    """Start the display: rich when installed, else the plain line; None when disabled (default: stderr not a
    terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        return RichDisplay(stats, 0.25).start()
    except ImportError:
        return Display(stats, 10.0).start()
