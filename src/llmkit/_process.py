"""Settings for the long-running processes llmkit itself runs (``llmkit serve``'s workers, ``llmkit batch``); never
applied by the library to a user's process.

Example:
    >>> GC_THRESHOLD
    10000
"""

from __future__ import annotations

import gc

#: Allocations between young-generation collections in such a process (Python's default: 700).
GC_THRESHOLD = 10_000


def tune_gc() -> None:
    """Set this process's garbage collector for many requests in flight (call it once startup is done).

    With 64 or more requests in flight most young objects are still alive when a collection runs, so at Python's
    default (one every 700 allocations) the collector ran about once every 35 requests, promoted what it found to the
    older generations and took 15-20% of a gateway request's CPU (``bench/gateway_profile.py``) and ~10% of a batch
    request's at 256 in flight (47 -> 10 µs a request). One collection every :data:`GC_THRESHOLD` allocations costs a
    few hundred kB at most; what was loaded at startup is frozen, never scanned again.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)
