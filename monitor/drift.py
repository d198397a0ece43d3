"""Drift of each closed window against a reference, as configured under ``drift:``.

The statistics live in ``detectors.drift``; this module only picks the reference (a stored
baseline, the first N windows, or the previous K windows), turns a window's stored
contents into the library's ``WindowData``, and records the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors import DetectorError
from detectors.drift import (
    ReferenceSnapshot,
    WindowData,
    build_reference,
    create_drift_test,
    run_drift_tests,
)
from monitor.config import DriftConfig
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.windows import Window, WindowContents

log = logging.getLogger(__name__)

MISSING = "(missing)"


def window_data(contents: WindowContents, config: DriftConfig) -> WindowData:
    """The window's samples restricted to the configured fields."""
    scores = {
        name: values
        for name, values in contents.scores.items()
        if config.scores is None or name in config.scores
    }
    categoricals = {name: _categorical(contents, name) for name in config.categoricals}
    embeddings = {
        name: vectors
        for name, vectors in contents.vectors.items()
        if config.embeddings is None or name in config.embeddings
    }
    texts = {name: contents.vector_prompts.get(name, ()) for name in embeddings}
    return WindowData(scores=scores, categoricals=categoricals, embeddings=embeddings, texts=texts)


def _categorical(contents: WindowContents, name: str) -> list[str]:
    if name == "model":
        return list(contents.models)
    return [str(meta.get(name, MISSING)) for meta in contents.metadata]


def reference_from(
    contents: Sequence[WindowContents], config: DriftConfig, reference_id: str | None = None
) -> ReferenceSnapshot:
    """A snapshot of several windows pooled together."""
    parts = [window_data(c, config) for c in contents]
    scores = _concat([p.scores for p in parts], axis_rows=False)
    embeddings = _concat([p.embeddings for p in parts], axis_rows=True)
    categoricals = {
        name: [value for part in parts for value in part.categoricals[name]]
        for name in config.categoricals
    }
    return build_reference(
        scores,
        categoricals,
        embeddings,
        max_samples=config.reference.max_samples,
        max_embeddings=config.reference.max_embeddings,
        seed=config.seed,
        reference_id=reference_id,
    )


def _concat(mappings: list[Any], *, axis_rows: bool) -> dict[str, np.ndarray]:
    names = {name for mapping in mappings for name in mapping}
    pooled: dict[str, np.ndarray] = {}
    for name in sorted(names):
        arrays = [np.asarray(m[name]) for m in mappings if name in m and len(m[name])]
        if arrays:
            pooled[name] = np.vstack(arrays) if axis_rows else np.concatenate(arrays)
    return pooled


def build_drift_tests(config: DriftConfig) -> list[Any]:
    tests = []
    for index, test in enumerate(config.tests):
        try:
            tests.append(create_drift_test(test.type, test.options))
        except DetectorError as exc:
            raise ConfigError(f"drift.tests[{index}]: {exc}") from None
    return tests


class DriftStage:
    def __init__(self, config: DriftConfig, store: Store, metrics: Metrics):
        self._config = config
        self._store = store
        self._metrics = metrics
        self._tests = build_drift_tests(config)
        self._cached: tuple[object, ReferenceSnapshot] | None = None

    def evaluate(self, contents: WindowContents) -> dict[str, Any]:
        config = self._config
        if contents.count < config.min_count:
            return _not_tested(f"{contents.count} records; drift.min_count is {config.min_count}")
        reference = self._reference(contents.window)
        if isinstance(reference, str):
            return _not_tested(reference)
        data = window_data(contents, config)
        report = run_drift_tests(
            reference, data, self._tests, config.alpha, config.correction, seed=config.seed
        )
        result = report.to_dict()
        self._metrics.set_drift(result)
        if config.html_report:
            result["report"] = self._write_html(reference, data, contents.window)
        return result

    def _reference(self, window: Window) -> ReferenceSnapshot | str:
        """The reference for ``window``, or why there is none yet."""
        mode = self._config.reference.mode
        if mode == "baseline":
            return self._baseline()
        wanted = self._config.reference.windows
        if mode == "first_windows":
            stored = self._stored("first_windows")
            if stored is not None:
                return stored
            windows = self._store.evaluated_windows(before_ms=window.start_ms, limit=wanted)
        else:
            windows = self._store.evaluated_windows(
                before_ms=window.start_ms, limit=wanted, newest_first=True
            )
        if len(windows) < wanted:
            return f"reference needs {wanted} evaluated windows, {len(windows)} so far"
        key: tuple[object, ...] = (mode, tuple(windows))
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        snapshot = reference_from([self._store.window_contents(w) for w in windows], self._config)
        if mode == "first_windows":
            # Kept in the store: a restart, or windows pruned later, still finds it.
            self._store.save_reference(snapshot.id, mode, snapshot.to_bytes())
            log.info("reference built from the first windows", extra={"reference": snapshot.id})
            key = (mode, "stored")
        self._cached = (key, snapshot)
        return snapshot

    def _baseline(self) -> ReferenceSnapshot | str:
        path = self._config.reference.baseline
        assert path is not None  # DriftConfig's validator requires it in baseline mode
        key = ("baseline", path)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        try:
            snapshot = ReferenceSnapshot.from_bytes(path.read_bytes())
        except FileNotFoundError:
            return f"no baseline file at {path}; build one with `alignwatch baseline build`"
        except (OSError, DetectorError) as exc:
            return f"drift.reference.baseline {path}: {exc}"
        self._cached = (key, snapshot)
        return snapshot

    def _stored(self, kind: str) -> ReferenceSnapshot | None:
        key = (kind, "stored")
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        payload = self._store.latest_reference(kind)
        if payload is None:
            return None
        snapshot = ReferenceSnapshot.from_bytes(payload)
        self._cached = (key, snapshot)
        return snapshot

    def _write_html(self, reference: ReferenceSnapshot, data: WindowData, window: Window) -> str:
        from detectors.drift.evidently_report import write_evidently_report

        folder = self._config.report_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"window-{window.start_ms}.html"
        write_evidently_report(dict(reference.scores), dict(data.scores), path)
        return str(path)


def _not_tested(reason: str) -> dict[str, Any]:
    return {"drifted": False, "tests": {}, "reference": None, "explanation": {"not_tested": reason}}
