"""Loaded models shared between scorers, so two scorers on one backbone load it once."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class ModelCache:
    """Models by key, held weakly: a backbone stays loaded while some scorer uses it and
    is freed with the last one (rebuilding scorers on a config reload frees old models)."""

    def __init__(self) -> None:
        self._items: weakref.WeakValueDictionary[Hashable, object] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The cached object for ``key``, calling ``load`` once if there is none."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                started = time.perf_counter()
                item = load()
                self._items[key] = item
                self.loads += 1
                log.info("loaded %s in %.1fs", key, time.perf_counter() - started)
            return item  # type: ignore[return-value]


# Process-wide because scorers are built one by one from config with no shared context.
MODELS = ModelCache()
