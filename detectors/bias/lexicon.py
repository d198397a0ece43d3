"""The identity lexicon: finding group mentions in text and swapping them for another
group's counterpart terms. The file format is described in
config/lexicons/identity_terms.yaml."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from detectors.errors import DetectorError

DEFAULT_LEXICON = Path(__file__).resolve().parents[2] / "config/lexicons/identity_terms.yaml"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SPACE = re.compile(r"\s+")


def _key(term: str) -> str:
    return _SPACE.sub(" ", term.strip().lower())


@dataclass(frozen=True)
class Category:
    """One category's groups and their terms (lower-case, in counterpart order)."""

    name: str
    groups: Mapping[str, tuple[str, ...]]
    _owner: dict[str, str] = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owner: dict[str, str] = {}
        for group, terms in self.groups.items():
            for term in terms:
                if owner.setdefault(term, group) != group:
                    raise ValueError(f"term {term!r} is in both {owner[term]!r} and {group!r}")
        # Longest first, so "black women" wins over a shorter overlapping term.
        alternatives = sorted(owner, key=len, reverse=True)
        body = "|".join(r"\s+".join(map(re.escape, term.split(" "))) for term in alternatives)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_pattern", re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.I))

    def find(self, text: str) -> Iterator[tuple[re.Match[str], str]]:
        """Each mention in ``text`` with the group it belongs to."""
        for match in self._pattern.finditer(text):
            yield match, self._owner[_key(match.group())]

    def mentioned(self, text: str) -> set[str]:
        """The groups ``text`` mentions."""
        return {group for _, group in self.find(text)}

    def swap(self, text: str, source: str, target: str) -> str:
        """``text`` with each ``source`` term replaced by its ``target`` counterpart;
        everything else, other groups' terms included, is left as it was."""
        source_terms, target_terms = self.groups[source], self.groups[target]

        def replace(match: re.Match[str]) -> str:
            position = source_terms.index(_key(match.group()))
            counterpart = target_terms[position] if position < len(target_terms) else None
            return _match_case(match.group(), counterpart or target_terms[0])

        return self._pattern.sub(
            lambda m: replace(m) if self._owner[_key(m.group())] == source else m.group(), text
        )


def _match_case(original: str, replacement: str) -> str:
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


@dataclass(frozen=True)
class Lexicon:
    """Identity categories by name, in file order."""

    categories: Mapping[str, Category]

    def outputs(self) -> tuple[tuple[str, str], ...]:
        """Every (category, group), the identity_mentions scorer's outputs in order."""
        return tuple((c.name, group) for c in self.categories.values() for group in c.groups)


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """Read and check a lexicon file (default: the one shipped under config/lexicons)."""
    path = Path(path) if path is not None else DEFAULT_LEXICON
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DetectorError(f"lexicon {path}: cannot read it: {exc}") from None
    raw = document.get("categories") if isinstance(document, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise DetectorError(f"lexicon {path}: needs a non-empty 'categories' mapping")
    categories: dict[str, Category] = {}
    for name, groups in raw.items():
        where = f"lexicon {path}: categories.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise DetectorError(f"{where}: names are lower-case identifiers")
        if not isinstance(groups, dict) or len(groups) < 2:
            raise DetectorError(f"{where}: needs at least two groups")
        parsed: dict[str, tuple[str, ...]] = {}
        for group, terms in groups.items():
            if not isinstance(group, str) or not _NAME.match(group):
                raise DetectorError(f"{where}.{group}: names are lower-case identifiers")
            if not isinstance(terms, list) or not terms:
                raise DetectorError(f"{where}.{group}: needs a non-empty list of terms")
            if not all(isinstance(t, str) and t.strip() for t in terms):
                raise DetectorError(f"{where}.{group}: terms are non-blank strings")
            parsed[group] = tuple(_key(t) for t in terms)
        try:
            categories[name] = Category(name, parsed)
        except ValueError as exc:
            raise DetectorError(f"{where}: {exc}") from None
    return Lexicon(categories)
