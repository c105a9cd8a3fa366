"""harness/bench/history.py: a run's history read back page by page."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.bench import history


def test_pages_follows_every_page_until_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = list(range(12))
    asked: list[tuple[int, int]] = []

    def fetch(*, limit: int, offset: int, **params: object) -> SimpleNamespace:
        asked.append((limit, offset))
        assert params == {"site_id": 1}
        return SimpleNamespace(count=len(rows), results=rows[offset : offset + limit])

    monkeypatch.setattr(history, "PAGE", 5)
    assert list(history.pages(fetch, site_id=1)) == rows
    assert asked == [(5, 0), (5, 5), (5, 10)]


def test_pages_stops_on_an_empty_page_even_if_the_count_says_more() -> None:
    # rows deleted while paging: the count is stale, the empty page ends it
    def fetch(*, limit: int, offset: int) -> SimpleNamespace:
        return SimpleNamespace(count=100, results=[1, 2] if offset == 0 else [])

    assert list(history.pages(fetch)) == [1, 2]
