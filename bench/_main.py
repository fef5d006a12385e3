"""The command line every ``python -m bench.<case>`` module shares: ``--calls`` and ``--rounds``, then its table."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def run(doc: str | None, measure: Callable[[int, int], Any], table: Callable[[Any], str], calls: int = 2000) -> int:
    """Parse ``--calls``/``--rounds``, measure, print the table."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--calls", type=int, default=calls)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(table(measure(args.calls, args.rounds)))
    return 0
