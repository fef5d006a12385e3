"""The garbage-collector settings of the processes llmkit runs itself (``llmkit serve``'s workers, ``llmkit batch``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from llmkit._process import GC_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_what_startup_loaded_and_collects_young_objects_less_often() -> None:
    _, older, oldest = gc.get_threshold()
    tune_gc()
    assert gc.get_threshold() == (GC_THRESHOLD, older, oldest)
    assert gc.get_freeze_count() > 1000  # the modules, classes and functions imported so far
