"""Evidently's data-drift HTML report for a window's score columns.

Evidently is imported inside the function: it takes seconds to import, and only windows
with reports enabled should pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

Columns = pd.DataFrame | Mapping[str, np.ndarray]


def score_frame(columns: Columns) -> pd.DataFrame:
    """A DataFrame of score columns; shorter columns are padded with NaN, which Evidently
    drops per column."""
    if isinstance(columns, pd.DataFrame):
        return columns
    return pd.DataFrame({k: pd.Series(np.asarray(v, dtype=float)) for k, v in columns.items()})


def write_evidently_report(reference: Columns, current: Columns, path: str | os.PathLike) -> Path:
    """Write Evidently's ``DataDriftPreset`` report comparing ``current`` with ``reference``.

    Only columns present in both are compared. The file is written beside ``path`` and
    renamed into place, so a reader never sees half a report.
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref, cur = score_frame(reference), score_frame(current)
    shared = [c for c in ref.columns if c in set(cur.columns)]
    snapshot = Report([DataDriftPreset()]).run(current_data=cur[shared], reference_data=ref[shared])
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    snapshot.save_html(str(partial))
    os.replace(partial, target)
    return target
