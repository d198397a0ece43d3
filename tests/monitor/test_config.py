from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.config import load_config, parse_config
from monitor.errors import ConfigError
from monitor.scoring import build_scorers

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {
    "source": {"type": "file", "file": {"path": "in.jsonl"}},
    "scorers": [{"type": "response_tokens"}],
}


def _error(document: dict, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(document, base_dir=tmp_path)
    return str(info.value)


@pytest.mark.parametrize(
    ("name", "scorers"),
    [
        (
            "default.yaml",
            [
                "response_tokens",
                "refusal",
                "toxicity",
                "embeddings",
                "reward",
                "sentiment",
                "identity_mentions",
            ],
        ),
        (
            "example.yaml",
            [
                "response_tokens",
                "refusal",
                "toxicity",
                "embeddings",
                "reward",
                "sentiment",
                "identity_mentions",
            ],
        ),
    ],
)
def test_shipped_configs_validate_and_build(name: str, scorers: list[str]):
    config = load_config(ROOT / "config" / name)
    assert [s.name for s in build_scorers(config.scorers)] == scorers


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path):
    config = parse_config(MINIMAL, base_dir=tmp_path)
    assert config.source.file is not None
    assert config.source.file.path == tmp_path / "in.jsonl"
    assert config.store.path == tmp_path / "alignwatch.db"


def test_durations_accept_units(tmp_path: Path):
    config = parse_config(
        {**MINIMAL, "windows": {"size": "5m", "allowed_lateness": "250ms"}}, tmp_path
    )
    assert (config.windows.size, config.windows.allowed_lateness) == (300.0, 0.25)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"windows": {"sise": "5m"}}, "windows.sise: unknown key"),
        ({"windows": {"size": "five minutes"}}, "windows.size: expected a duration"),
        ({"batch": {"max_size": 0}}, "batch.max_size"),
        ({"source": {"type": "kafka"}}, "source.kafka is missing"),
        ({"source": {"type": "mqtt", "file": {"path": "x"}}}, "source.type"),
        ({"scorers": [{"type": "refusal", "name": "Bad Name"}]}, "scorers[0].name"),
        ({"scorers": []}, "scorers"),
        ({"store": {"path": "x.db", "retention": -1}}, "store.retention"),
        ({"store": {"type": "postgres"}}, "store.type postgres needs exactly one of store.url"),
        ({"store": {"type": "postgres", "url": "mysql://x"}}, "store.url must start with"),
        ({"store": {"url": "postgresql://h/db"}}, "store.url is for store.type postgres"),
        ({"windows": {"partial_after": 0}}, "windows.partial_after"),
    ],
)
def test_errors_name_the_offending_key(tmp_path: Path, patch: dict, expected: str):
    assert expected in _error({**MINIMAL, **patch}, tmp_path)


def test_missing_required_section_is_named(tmp_path: Path):
    assert "source: required key is missing" in _error({"scorers": MINIMAL["scorers"]}, tmp_path)


def test_scorer_options_are_validated_with_their_key(tmp_path: Path):
    config = parse_config(
        {**MINIMAL, "scorers": [{"type": "refusal", "options": {"phrases": 3}}]}, tmp_path
    )
    with pytest.raises(ConfigError, match=r"scorers\[0\].*phrases"):
        build_scorers(config.scorers)


def test_unknown_scorer_lists_known_ones(tmp_path: Path):
    config = parse_config({**MINIMAL, "scorers": [{"type": "toxicty"}]}, tmp_path)
    with pytest.raises(
        ConfigError, match=r"scorers\[0\]: unknown scorer 'toxicty'; known: .*refusal"
    ):
        build_scorers(config.scorers)


def test_duplicate_scorer_names_are_refused(tmp_path: Path):
    scorers = [{"type": "refusal"}, {"type": "refusal"}]
    assert "two scorers are named 'refusal'" in _error({**MINIMAL, "scorers": scorers}, tmp_path)


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(MINIMAL))
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MINIMAL, "batch": {"max_wiat": 1}}))
    assert main(["check-config", str(bad)]) == 2
    assert "batch.max_wiat: unknown key" in capsys.readouterr().err


def test_kafka_client_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    kafka = {
        "type": "kafka",
        "kafka": {
            "bootstrap_servers": ["127.0.0.1:1"],
            "topics": ["t"],
            "client_options": {"enable_auto_commit": True},
        },
    }
    path = tmp_path / "kafka.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "source": kafka}))
    assert main(["check-config", str(path)]) == 2
    assert "source.kafka.client_options.enable_auto_commit" in capsys.readouterr().err


def _kafka_document(**kafka: object) -> dict:
    source = {"type": "kafka", "kafka": {"bootstrap_servers": ["127.0.0.1:1"], "topics": ["t"]}}
    source["kafka"].update(kafka)
    return {**MINIMAL, "source": source}


def test_kafka_secrets_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.sources.kafka import consumer_options

    document = _kafka_document(
        client_options={"sasl_plain_username": "svc"},
        client_options_env={"sasl_plain_password": "KAFKA_PASSWORD"},
    )
    config = parse_config(document, base_dir=tmp_path)
    monkeypatch.setenv("KAFKA_PASSWORD", "hunter2-secret")
    options = consumer_options(config.source.kafka)
    assert options["sasl_plain_password"] == "hunter2-secret"
    assert options["sasl_plain_username"] == "svc"

    monkeypatch.delenv("KAFKA_PASSWORD")
    with pytest.raises(
        ConfigError, match=r"client_options_env\.sasl_plain_password: .*KAFKA_PASSWORD"
    ):
        consumer_options(config.source.kafka)


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        (
            {
                "client_options": {"sasl_plain_password": "x"},
                "client_options_env": {"sasl_plain_password": "P"},
            },
            "in both client_options and client_options_env",
        ),
        ({"client_options_env": {"group_id": "G"}}, "client_options_env.group_id: set by"),
        ({"client_options_env": {"sasl_pasword": "P"}}, "not a kafka-python option"),
    ],
)
def test_bad_kafka_secret_settings_name_the_key(
    tmp_path: Path, kafka: dict, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.sources.kafka import consumer_options

    monkeypatch.setenv("P", "value")
    monkeypatch.setenv("G", "value")
    with pytest.raises(ConfigError, match=message):
        config = parse_config(_kafka_document(**kafka), base_dir=tmp_path)
        consumer_options(config.source.kafka)


def test_store_url_from_the_environment_names_the_variable_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = {"type": "postgres", "url_env": "AW_DB_URL"}
    config = parse_config({**MINIMAL, "store": store}, tmp_path)
    monkeypatch.delenv("AW_DB_URL", raising=False)
    with pytest.raises(ConfigError, match=r"store\.url_env: environment variable AW_DB_URL"):
        config.store.connection_url()
    monkeypatch.setenv("AW_DB_URL", "postgresql://u:secret@h/db")
    assert config.store.connection_url() == "postgresql://u:secret@h/db"
    assert config.store.sqlite_at(tmp_path / "r.db").type == "sqlite"
