"""The progress display: a plain line without rich, rich's bar with it, nothing when disabled."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from llmkit.batch import progress
from llmkit.batch.runner import Stats


def test_plain_line_has_counts_rate_eta_tokens_and_cost() -> None:
    stats = Stats(total=10, succeeded=4, failed=1, in_flight=2, tokens=50, cost=Decimal("0.25"))
    text = progress.line(stats)
    assert text.startswith("5/10 done (1 failed) | 2 in flight | ")
    assert "req/s | ETA " in text
    assert text.endswith("50 tokens | $0.25")


def test_disabled_when_not_asked_and_not_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress.start_display(Stats()) is None


def test_plain_display_draws_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    display = progress.Display(Stats(total=3, succeeded=3), period=60).start()
    display.stop()
    assert err.getvalue().startswith("llmkit batch: 3/3 done (0 failed)")


def test_rich_display(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rich", reason="the 'batch' extra is not installed: pip install 'llmkit[batch]'")
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setenv("COLUMNS", "200")
    display = progress.start_display(Stats(total=4, succeeded=2, failed=1, tokens=9), enabled=True)
    assert isinstance(display, progress.RichDisplay)
    display.stop()
    assert "3/4" in err.getvalue()
    assert "1 failed" in err.getvalue()
