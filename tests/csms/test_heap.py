"""The collector's passes: what settles is frozen, and only the full pass looks at it again."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from csms import heap


class Node:
    """An object in a reference cycle with itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of this test process keeps the collector it had


def test_a_settle_frees_new_cycles_and_freezes_what_is_alive() -> None:
    garbage, alive = Node(), Node()
    gone = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    done = heap.settle()
    assert gone() is None and done.collected >= 1
    assert done.frozen == gc.get_freeze_count() > before
    assert alive.me is alive


def test_a_cycle_dropped_after_it_was_frozen_waits_for_the_full_pass() -> None:
    node = Node()
    ref = weakref.ref(node)
    heap.settle()
    del node
    heap.settle()
    assert ref() is not None  # frozen: the short passes never look at it
    heap.full()
    assert ref() is None
