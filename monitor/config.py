"""Configuration: pydantic models validated once at start-up.

Every key is documented in ``config/example.yaml``. Unknown keys are errors, and every
error names the offending key. Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _seconds(value: Any) -> Any:
    """Durations are numbers of seconds or strings such as ``"250ms"``, ``"5m"``, ``"7d"``."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as 30s, 5m, 1h or 7d, got {value!r}")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSourceConfig(_Strict):
    path: Path
    follow: bool = False
    poll_interval: PositiveDuration = 0.5


class KafkaSourceConfig(_Strict):
    bootstrap_servers: list[str] = Field(min_length=1)
    topics: list[str] = Field(min_length=1)
    group_id: str = "alignwatch"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    client_options: dict[str, Any] = Field(default_factory=dict)
    # Option name -> environment variable holding its value: secrets stay out of the file.
    client_options_env: dict[str, str] = Field(default_factory=dict)
    lag_interval: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _options_given_once(self) -> KafkaSourceConfig:
        both = sorted(set(self.client_options) & set(self.client_options_env))
        if both:
            raise ValueError(f"{both[0]!r} is in both client_options and client_options_env")
        return self

    def client_settings(self) -> dict[str, Any]:
        """client_options with the client_options_env values read from the environment.

        Errors name the variable, never its value.
        """
        settings = dict(self.client_options)
        for option, variable in self.client_options_env.items():
            value = os.environ.get(variable)
            if not value:
                raise ConfigError(
                    f"source.kafka.client_options_env.{option}: environment variable "
                    f"{variable} is not set"
                )
            settings[option] = value
        return settings


class SourceConfig(_Strict):
    type: Literal["file", "kafka"] = "file"
    file: FileSourceConfig | None = None
    kafka: KafkaSourceConfig | None = None

    @model_validator(mode="after")
    def _settings_for_type(self) -> SourceConfig:
        if getattr(self, self.type) is None:
            raise ValueError(f"source.type is {self.type!r} but source.{self.type} is missing")
        return self


class RecordsConfig(_Strict):
    max_bytes: int = Field(default=1_048_576, gt=0)
    max_future: Duration = 86400.0


class DeadLetterConfig(_Strict):
    type: Literal["auto", "file", "kafka"] = "auto"
    path: Path = Path("dead_letters.jsonl")
    topic: str | None = None


class BatchConfig(_Strict):
    max_size: int = Field(default=256, gt=0, le=100_000)
    max_wait: Duration = 0.5


class ScorerConfig(_Strict):
    type: str
    name: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def instance_name(self) -> str:
        return self.name or self.type

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z][a-z0-9_]*", value):
            raise ValueError("must be lower_snake_case (letters, digits, underscores)")
        return value


class WindowsConfig(_Strict):
    size: PositiveDuration = 300.0
    allowed_lateness: Duration = 60.0
    idle_close_after: PositiveDuration | None = None
    # Shared store only: how long (wall clock) a window may wait for lagging partitions after
    # the fastest one passed it before it is closed anyway and marked partial.
    partial_after: PositiveDuration = 600.0


class EvaluationConfig(_Strict):
    interval: PositiveDuration = 10.0
    quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.5, 0.9, 0.99]
    )


class StoreConfig(_Strict):
    type: Literal["sqlite", "postgres"] = "sqlite"
    path: Path = Path("alignwatch.db")
    # PostgreSQL connection URL (postgresql://user@host:port/db), or the environment
    # variable holding it (so a password stays out of the file); one of them for postgres.
    url: str | None = None
    url_env: str | None = None
    retention: PositiveDuration = 7 * 86400.0
    vector_sample: int = Field(default=1000, gt=0, le=100_000)
    keep_texts: Literal["none", "notable", "all"] = "notable"
    example_chars: int = Field(default=300, ge=0)

    @model_validator(mode="after")
    def _url_for_postgres(self) -> StoreConfig:
        given = [key for key in ("url", "url_env") if getattr(self, key) is not None]
        if self.type == "postgres" and len(given) != 1:
            raise ValueError("store.type postgres needs exactly one of store.url, store.url_env")
        if self.type == "sqlite" and given:
            raise ValueError(f"store.{given[0]} is for store.type postgres")
        if self.url is not None and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("store.url must start with postgresql://")
        return self

    def sqlite_at(self, path: Path) -> StoreConfig:
        """These settings on a SQLite file: replays never write to a shared store."""
        return self.model_copy(
            update={"type": "sqlite", "path": path, "url": None, "url_env": None}
        )

    def connection_url(self) -> str:
        """The URL, read from ``url_env`` when given; errors name the variable, not the value."""
        if self.url is not None:
            return self.url
        value = os.environ.get(self.url_env or "")
        if not value:
            raise ConfigError(f"store.url_env: environment variable {self.url_env} is not set")
        return value


class DriftTestConfig(_Strict):
    type: str
    options: dict[str, Any] = Field(default_factory=dict)


class ReferenceConfig(_Strict):
    mode: Literal["baseline", "first_windows", "rolling"] = "first_windows"
    baseline: Path | None = None
    windows: int = Field(default=3, gt=0, le=1000)
    max_samples: int = Field(default=10_000, gt=0)
    max_embeddings: int = Field(default=2_000, gt=0)


def _default_drift_tests() -> list[DriftTestConfig]:
    return [DriftTestConfig(type="ks"), DriftTestConfig(type="chi2"), DriftTestConfig(type="mmd")]


class DriftConfig(_Strict):
    enabled: bool = False
    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["bh", "bonferroni"] = "bh"
    reference: ReferenceConfig = ReferenceConfig()
    tests: list[DriftTestConfig] = Field(default_factory=_default_drift_tests, min_length=1)
    scores: list[str] | None = None
    categoricals: list[str] = Field(default_factory=lambda: ["model"])
    embeddings: list[str] | None = None
    min_count: int = Field(default=30, gt=1)
    html_report: bool = False
    report_dir: Path = Path("reports")
    seed: int = 0

    @model_validator(mode="after")
    def _baseline_file(self) -> DriftConfig:
        if self.enabled and self.reference.mode == "baseline" and self.reference.baseline is None:
            raise ValueError(
                "drift.reference.mode is 'baseline' but drift.reference.baseline (a file written "
                "by `alignwatch baseline build`) is missing"
            )
        return self


Comparator = Literal[">", ">=", "<", "<=", "==", "!="]
_NAME = r"^[a-z][a-z0-9_]*$"


class ThresholdRuleConfig(_Strict):
    name: str = Field(pattern=_NAME)
    metric: str
    op: Comparator
    threshold: float
    for_windows: int = Field(default=1, gt=0, alias="for")
    labels: dict[str, str] = Field(default_factory=dict)


class AlertRuleConfig(ThresholdRuleConfig):
    severity: Literal["critical", "error", "warning", "info"] = "warning"
    summary: str | None = None


class SinkConfig(_Strict):
    name: str = Field(pattern=_NAME)
    type: Literal["alertmanager", "webhook", "slack", "pagerduty"]
    url: str = Field(pattern=r"^https?://")
    # Environment variables holding secrets; the values never enter config, logs or errors.
    secret_env: str | None = None
    routing_key_env: str | None = None
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _secrets(self) -> SinkConfig:
        if self.type == "webhook" and self.secret_env is None:
            raise ValueError("a webhook sink needs secret_env (the HMAC key's variable)")
        if self.type == "pagerduty" and self.routing_key_env is None:
            raise ValueError("a pagerduty sink needs routing_key_env")
        return self


class DeliveryConfig(_Strict):
    initial_backoff: PositiveDuration = 1.0
    max_backoff: PositiveDuration = 300.0
    give_up_after: PositiveDuration = 86400.0
    poll_interval: PositiveDuration = 1.0


class AlertsConfig(_Strict):
    rules: list[AlertRuleConfig] = Field(default_factory=list)
    # Sinks (by name) every alert goes to.
    sinks: list[SinkConfig] = Field(default_factory=list)
    # A still-firing alert is sent again once this much event time has passed.
    renotify_after: PositiveDuration = 3600.0
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="after")
    def _unique(self) -> AlertsConfig:
        for kind, names in (
            ("rule", [r.name for r in self.rules]),
            ("sink", [s.name for s in self.sinks]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"alerts: {kind} names must be unique, got {names}")
        return self


class ExportConfig(_Strict):
    directory: Path = Path("exports")
    # The trigger's window and this many before it.
    windows: int = Field(default=3, gt=0)
    # A record is exported (and its texts kept when store.keep_texts is "notable") when a
    # score is above / below these thresholds.
    score_above: dict[str, float] = Field(default_factory=lambda: {"toxicity": 0.5})
    score_below: dict[str, float] = Field(default_factory=dict)
    feedback_labels: list[str] = Field(default_factory=lambda: ["harmful", "biased", "incorrect"])
    max_records: int = Field(default=10_000, gt=0)
    parquet: bool = True


class TriggersConfig(_Strict):
    rules: list[ThresholdRuleConfig] = Field(default_factory=list)
    sinks: list[SinkConfig] = Field(default_factory=list)
    # At most one trigger per rule (reason) within this much event time.
    cooldown: PositiveDuration = 6 * 3600.0
    export: ExportConfig = ExportConfig()

    @model_validator(mode="after")
    def _webhooks(self) -> TriggersConfig:
        if any(sink.type != "webhook" for sink in self.sinks):
            raise ValueError("triggers.sinks: triggers go to webhook sinks only")
        return self


class BiasConfig(_Strict):
    enabled: bool = False
    # The identity_mentions scorer instance whose <name>_<category>_<group> scores say
    # which groups a record mentions.
    mentions: str = "identity_mentions"
    # Score names compared between groups; a name not scored is skipped.
    toxicity: str = "toxicity"
    sentiment: str = "sentiment"
    refusal: str = "refusal"
    reward: str = "reward"
    segments: list[str] = Field(default_factory=list)
    toxic_threshold: float = 0.5
    min_count: int = Field(default=20, gt=1)
    # Re-score kept responses with identity terms swapped (needs the toxicity scorer).
    sensitivity: bool = True
    sensitivity_texts: int = Field(default=100, gt=0)


class MetricsConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    token_env: str = "ALIGNWATCH_API_TOKEN"
    max_body_bytes: int = Field(default=65_536, gt=0)
    labels: list[Annotated[str, Field(pattern=_NAME)]] = Field(
        default_factory=lambda: ["harmful", "biased", "incorrect", "ok"], min_length=1
    )


class RuntimeConfig(_Strict):
    shutdown_timeout: PositiveDuration = 30.0


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Strict):
    source: SourceConfig
    records: RecordsConfig = RecordsConfig()
    dead_letter: DeadLetterConfig = DeadLetterConfig()
    batch: BatchConfig = BatchConfig()
    scorers: list[ScorerConfig] = Field(min_length=1)
    windows: WindowsConfig = WindowsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    drift: DriftConfig = DriftConfig()
    bias: BiasConfig = BiasConfig()
    alerts: AlertsConfig = AlertsConfig()
    triggers: TriggersConfig = TriggersConfig()
    store: StoreConfig = StoreConfig()
    metrics: MetricsConfig = MetricsConfig()
    api: ApiConfig = ApiConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _sink_names(self) -> Config:
        names = [s.name for s in self.alerts.sinks] + [s.name for s in self.triggers.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique across alerts and triggers: {names}")
        return self

    @model_validator(mode="after")
    def _unique_scorer_names(self) -> Config:
        seen: set[str] = set()
        for scorer in self.scorers:
            if scorer.instance_name in seen:
                raise ValueError(
                    f"two scorers are named {scorer.instance_name!r}; give one a distinct 'name'"
                )
            seen.add(scorer.instance_name)
        return self


def load_config(path: str | Path) -> Config:
    """Read, validate and resolve a YAML config; any problem raises ConfigError."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return parse_config(document, base_dir=path.resolve().parent, origin=str(path))


def parse_config(document: dict[str, Any], base_dir: Path, origin: str = "config") -> Config:
    try:
        config = Config.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_describe(exc)}") from None
    return _resolve_paths(config, base_dir)


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = _key_path(error["loc"])
        if error["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (check the spelling against config/example.yaml)")
        elif error["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {message} (got {error.get('input')!r})")
    return "; ".join(lines)


def _key_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (base_dir / path).resolve()

    baseline = config.drift.reference.baseline
    updates: dict[str, Any] = {
        "store": config.store.model_copy(update={"path": absolute(config.store.path)}),
        "dead_letter": config.dead_letter.model_copy(
            update={"path": absolute(config.dead_letter.path)}
        ),
        "triggers": config.triggers.model_copy(
            update={
                "export": config.triggers.export.model_copy(
                    update={"directory": absolute(config.triggers.export.directory)}
                )
            }
        ),
        "drift": config.drift.model_copy(
            update={
                "report_dir": absolute(config.drift.report_dir),
                "reference": config.drift.reference.model_copy(
                    update={"baseline": baseline and absolute(baseline)}
                ),
            }
        ),
    }
    if config.source.file is not None:
        file_source = config.source.file.model_copy(
            update={"path": absolute(config.source.file.path)}
        )
        updates["source"] = config.source.model_copy(update={"file": file_source})
    return config.model_copy(update=updates)
