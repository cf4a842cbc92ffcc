"""One place for what a process keeps across resource instances."""

from __future__ import annotations

import threading

import pytest

from resources import process_cache
from resources.process_cache import ProcessCache


def test_a_value_is_created_once_per_key_even_under_concurrency():
    cache: ProcessCache[str, object] = ProcessCache("test values")
    made: list[str] = []
    barrier = threading.Barrier(8)

    def create(key: str) -> object:
        made.append(key)
        return object()

    results: list[object] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get("a", lambda: create("a")))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["a"] and len({id(r) for r in results}) == 1
    assert cache.get("b", lambda: create("b")) is not results[0] and made == ["a", "b"]


def test_a_failed_creation_caches_nothing_and_is_tried_again():
    cache: ProcessCache[str, int] = ProcessCache("test values")
    with pytest.raises(RuntimeError):
        cache.get("k", lambda: (_ for _ in ()).throw(RuntimeError("database down")))
    assert cache.get("k", lambda: 7) == 7
    cache.clear()
    assert cache.get("k", lambda: 8) == 8


def test_every_cache_of_the_resources_is_declared_here():
    # The resources keep no module-level dictionaries or sets of their own.
    import ast
    from pathlib import Path

    root = Path(process_cache.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        if path.name == "process_cache.py":
            continue
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            # A cache starts empty: {} or set() or dict() at module level (constant tables do not).
            empty = (isinstance(value, ast.Dict) and not value.keys) or (
                isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in {"set", "dict"}
                and not value.args and not value.keywords
            )  # fmt: skip
            if empty:
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_a_current_value_is_made_again_only_when_its_version_changes_and_only_the_latest_is_kept():
    cache: ProcessCache[str, str] = ProcessCache("test values")
    made: list[tuple[str, int]] = []

    def make(key: str, version: int) -> str:
        made.append((key, version))
        return f"{key}@{version}"

    assert cache.get_current("f", 1, lambda: make("f", 1)) == "f@1"
    assert cache.get_current("f", 1, lambda: make("f", 1)) == "f@1" and made == [("f", 1)]
    assert cache.get_current("f", 2, lambda: make("f", 2)) == "f@2"
    # Version 1 was replaced, not kept beside version 2: asking for it makes it again.
    assert cache.get_current("f", 1, lambda: make("f", 1)) == "f@1" and made == [("f", 1), ("f", 2), ("f", 1)]
    with pytest.raises(RuntimeError):
        cache.get_current("g", 1, lambda: (_ for _ in ()).throw(RuntimeError("unreadable")))
    assert cache.get_current("g", 1, lambda: "g@1") == "g@1"
    cache.clear()
    assert cache.get_current("f", 1, lambda: "again") == "again"
