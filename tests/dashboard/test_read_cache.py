"""The read cache's single flight: concurrent callers of one key share one load."""

from __future__ import annotations

import threading
from collections.abc import Callable

from dashboard.reads import cache as read_cache
from services.operations import Actor, OperationError

SUPPORT = Actor("sam", "Sam", frozenset({"support"}))


def _blocked(result: Callable[[], str]) -> tuple[threading.Event, threading.Event,
                                                 Callable[[], str], list[int]]:
    """A load that waits for `release` once started; counts its calls."""
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def load() -> str:
        calls.append(1)
        started.set()
        assert release.wait(5)
        return result()

    return started, release, load, calls


def test_concurrent_callers_of_one_key_share_one_load() -> None:
    cache = read_cache.ReadCache(ttl=30)
    key = read_cache.read_key(object(), SUPPORT, "overview", "*")
    started, release, load, calls = _blocked(lambda: "loaded")
    got: list[str] = []
    first = threading.Thread(target=lambda: got.append(cache.get_or_load(key, load)))
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=lambda: got.append(cache.get_or_load(key, load)))
    second.start()
    second.join(0.3)
    assert second.is_alive()  # waiting for the first load, not loading again
    release.set()
    first.join(5)
    second.join(5)
    assert got == ["loaded", "loaded"] and len(calls) == 1
    assert cache.get_or_load(key, lambda: "again") == "loaded"  # and it was kept


def test_a_failed_load_fails_its_waiters_and_is_not_kept() -> None:
    cache = read_cache.ReadCache(ttl=30)
    key = read_cache.read_key(object(), SUPPORT, "overview", "*")

    def fail() -> str:
        raise OperationError("upstream down")

    started, release, load, calls = _blocked(fail)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            cache.get_or_load(key, load)
        except OperationError as exc:
            errors.append(exc)

    first = threading.Thread(target=call)
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=call)
    second.start()
    second.join(0.3)
    release.set()
    first.join(5)
    second.join(5)
    assert len(errors) == 2 and len(calls) == 1
    assert cache.get_or_load(key, lambda: "fine") == "fine"  # the failure was not kept


def test_a_caller_after_an_invalidation_does_not_join_the_older_load() -> None:
    cache = read_cache.ReadCache(ttl=30)
    key = read_cache.read_key(object(), SUPPORT, "grant_detail", "cgrant_x")
    started, release, load, _ = _blocked(lambda: "before the change")
    first = threading.Thread(target=lambda: cache.get_or_load(key, load))
    first.start()
    assert started.wait(5)
    cache.invalidate("cgrant_x")
    assert cache.get_or_load(key, lambda: "after the change") == "after the change"
    release.set()
    first.join(5)
    # The older load, landing late, neither replaced nor dropped the newer value.
    assert cache.get_or_load(key, lambda: "reloaded") == "after the change"
