from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pytest

from detectors.bias import load_lexicon
from detectors.bias.scorers import IdentityMentions
from detectors.errors import DetectorError
from detectors.scorers import create_scorer
from tests.detectors.fixtures import Pair

LEXICON = load_lexicon()


def test_the_shipped_lexicon_covers_the_required_categories() -> None:
    assert set(LEXICON.categories) >= {
        "gender",
        "race_ethnicity",
        "religion",
        "age",
        "disability",
        "sexual_orientation",
        "nationality",
    }


@pytest.mark.parametrize(
    ("text", "category", "groups"),
    [
        ("My MOTHER and her  sister", "gender", {"female"}),
        ("Men and women differ?", "gender", {"female", "male"}),
        ("A story about Black\nwomen in tech", "race_ethnicity", {"black"}),
        ("Is the mosque open on Friday?", "religion", {"muslim"}),
        ("Jokes about elderly people", "age", {"old"}),
        ("A Non-Disabled person", "disability", {"non_disabled"}),
        ("Describe a gay couple", "sexual_orientation", {"gay"}),
        ("The Germanic languages", "nationality", set()),
        ("Why are Germans punctual?", "nationality", {"german"}),
    ],
)
def test_mentions_are_whole_words_and_phrases(text: str, category: str, groups: set[str]) -> None:
    assert LEXICON.categories[category].mentioned(text) == groups


@pytest.mark.parametrize(
    "text",
    [
        "Pair white wine with fish and drink black coffee.",
        "Go straight ahead, then left.",
        "I disabled the button and the manual is helpful.",
        "Check the humanities department; shepherd the herd.",
    ],
)
def test_everyday_senses_are_not_mentions(text: str) -> None:
    assert not any(c.mentioned(text) for c in LEXICON.categories.values())


def test_a_swap_changes_only_the_swapped_terms_and_keeps_their_case() -> None:
    gender = LEXICON.categories["gender"]
    text = "She told her Mother: the WOMEN of Lisbon, not the men, chose hers."
    swapped = gender.swap(text, "female", "male")
    assert swapped == "He told his Father: the MEN of Lisbon, not the men, chose his."
    matcher = difflib.SequenceMatcher(a=text, b=swapped, autojunk=False)
    changed = [text[i1:i2] for op, i1, i2, _, _ in matcher.get_opcodes() if op != "equal"]
    terms = {m.group().lower() for m, g in gender.find(text) if g == "female"}
    assert all(any(c.lower() in t for t in terms) for c in changed)
    assert gender.swap(swapped, "male", "female").startswith("She told her Mother")


def test_a_missing_counterpart_swaps_to_the_first_term() -> None:
    race = LEXICON.categories["race_ethnicity"]
    assert race.swap("Black people and blacks", "black", "indigenous") == (
        "Indigenous people and indigenous people"
    )


def test_identity_mentions_emit_a_fixed_output_per_group() -> None:
    scorer = create_scorer("identity_mentions")
    assert isinstance(scorer, IdentityMentions)
    assert "gender_female" in scorer.outputs
    assert len(scorer.outputs) == sum(len(c.groups) for c in LEXICON.categories.values())
    items = [Pair("Tell me about Muslim women", "ok"), Pair("", ""), Pair("猫", "women")]
    scores = scorer.score(items)
    assert set(scores) == set(scorer.outputs)
    flagged = {name for name, column in scores.items() if column.any()}
    assert flagged == {"gender_female", "religion_muslim"}
    np.testing.assert_array_equal(scores["gender_female"], [1.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("categories: {}", "non-empty 'categories'"),
        ("categories: {gender: {female: [woman]}}", "at least two groups"),
        ("categories: {gender: {female: [woman], male: [woman]}}", "in both"),
        ("categories: {Gender: {a: [x], b: [y]}}", "lower-case identifiers"),
        ("categories: {g: {a: [x], b: []}}", "non-empty list"),
    ],
)
def test_a_bad_lexicon_names_the_problem(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text(body)
    with pytest.raises(DetectorError, match=message):
        load_lexicon(path)
    with pytest.raises(DetectorError, match="cannot read"):
        load_lexicon(tmp_path / "missing.yaml")
