"""The start-up heap freeze (``DEEPCANVAS_FREEZE_HEAP``): what is loaded leaves the collector's full passes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.main import settle_heap
from app.settings import Settings


@pytest.fixture
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_settle_heap_freezes_what_is_alive(thawed: None) -> None:
    loaded = [{"weights": list(range(10))} for _ in range(100)]  # objects start-up would have made
    gc.unfreeze()
    frozen = settle_heap()
    assert frozen >= len(loaded) and gc.get_freeze_count() == frozen
    in_generations = {id(obj) for obj in gc.get_objects()}  # the permanent generation is not listed
    assert all(gc.is_tracked(obj) and id(obj) not in in_generations for obj in loaded)


def test_the_freeze_is_on_by_default_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPCANVAS_FREEZE_HEAP", raising=False)
    assert Settings().freeze_heap is True
    monkeypatch.setenv("DEEPCANVAS_FREEZE_HEAP", "false")
    assert Settings().freeze_heap is False
