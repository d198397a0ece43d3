"""Torch-backed scorers, imported only when a config names one.

OpenMP reads OMP_WAIT_POLICY once, when torch loads it. Spin-waiting threads made a BiLSTM
forward 190x slower on busy cores, so PASSIVE is the default here, before torch is
imported; a process that imported torch earlier must set it in its environment instead.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
