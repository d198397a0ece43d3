"""Resolve config names to classes through import strings, so naming a light scorer
never imports torch (the uvicorn way of keeping `--help` fast)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from detectors.errors import DetectorError


def load_object(import_string: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attribute = import_string.partition(":")
    if not module_name or not attribute:
        raise DetectorError(f"import string {import_string!r} must look like 'module:attribute'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise DetectorError(f"{module_name!r} has no attribute {attribute!r}") from exc


def resolve(registry: Mapping[str, str], name: str, kind: str) -> Any:
    """Look ``name`` up in ``registry``; an unknown name lists the known ones.

    A name holding a colon is an import string itself (``package.module:Class``), so a
    deployment can plug in its own implementation without editing the registry.
    """
    if ":" in name:
        try:
            return load_object(name)
        except ImportError as exc:
            raise DetectorError(f"{kind} {name!r}: cannot import it: {exc}") from None
    try:
        import_string = registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise DetectorError(f"unknown {kind} {name!r}; known: {known}") from None
    return load_object(import_string)


def create(
    registry: Mapping[str, str], name: str, kind: str, options: Mapping[str, Any] | None
) -> Any:
    """Build ``name`` from ``registry`` with ``options``; bad options raise DetectorError
    naming each offending option."""
    cls = resolve(registry, name, kind)
    try:
        return cls(**dict(options or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise DetectorError(f"invalid options for {kind} {name!r}: {problems}") from None
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"invalid options for {kind} {name!r}: {exc}") from None
