"""``alignwatch`` command line. Imports nothing heavy until a command needs it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.config import Config, StoreConfig
    from monitor.daemon import Daemon

log = logging.getLogger("alignwatch")

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    # Before anything imports torch: busy-waiting OpenMP threads slow a loaded machine 100x.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = _parser()
    args = parser.parse_args(argv)
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignwatch", description="Monitor deployed ML and LLM systems from their logs."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, type=Path, help="YAML config file")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    run.set_defaults(handler=_run)

    replay = commands.add_parser(
        "replay", help="process a JSONL file to the end, evaluate every window, print a summary"
    )
    replay.add_argument("--config", required=True, type=Path, help="YAML config file")
    replay.add_argument("input", type=Path, help="JSON-lines file of log records")
    replay.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    replay.add_argument(
        "--store",
        default=":memory:",
        help="SQLite file to keep the replay's state in (default: in memory, discarded)",
    )
    replay.add_argument(
        "--dead-letters",
        type=Path,
        default=None,
        help="JSONL file for dead letters (default: dead_letter.path from the config)",
    )
    replay.add_argument(
        "--deliver",
        action="store_true",
        help="send the replay's alerts to the configured sinks (off: they are only listed)",
    )
    replay.add_argument(
        "--deliver-timeout",
        type=float,
        default=60.0,
        help="seconds to keep retrying deliveries after the input ends (default 60)",
    )
    replay.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    replay.set_defaults(handler=_replay)

    baseline = commands.add_parser("baseline", help="manage drift reference snapshots")
    baseline_commands = baseline.add_subparsers(required=True, metavar="ACTION")
    build = baseline_commands.add_parser(
        "build", help="score a JSONL file and write it as a drift baseline reference file"
    )
    build.add_argument("--config", required=True, type=Path, help="YAML config file")
    build.add_argument("input", type=Path, help="JSON-lines file of log records")
    build.add_argument(
        "--out",
        type=Path,
        default=None,
        help="reference file to write (default: drift.reference.baseline from the config)",
    )
    build.add_argument("--id", default=None, help="reference id (default: derived from content)")
    build.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    build.set_defaults(handler=_baseline_build)

    openapi = commands.add_parser("openapi", help="print the HTTP API's OpenAPI document")
    openapi.set_defaults(handler=_openapi)

    check = commands.add_parser("check-config", help="validate a config file and its scorers")
    check.add_argument("config", type=Path)
    check.set_defaults(handler=_check_config)
    return parser


def _load(path: Path, level_override: str | None = None) -> Config:
    from monitor.config import load_config
    from monitor.logs import configure

    config = load_config(path)
    configure(level_override or config.logging.level)
    return config


def _run(args: argparse.Namespace) -> int:
    from monitor.errors import AlignwatchError, ConfigError

    try:
        config = _load(args.config)
        from monitor.daemon import Daemon
        from monitor.progress import Progress

        finite = config.source.type == "file" and config.source.file is not None
        finite = finite and not config.source.file.follow
        progress = Progress() if finite and not args.quiet else None
        drain = config.runtime.shutdown_timeout if finite else 0.0
        daemon = Daemon(config, on_batch=progress, drain_timeout=drain)
        code = daemon.run()
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except AlignwatchError as exc:
        return _fail(str(exc), 1)
    if progress is not None:
        progress.finish(daemon.pipeline.totals)
    if daemon.end_of_input:
        _print_summary(daemon)
    return code


def _replay(args: argparse.Namespace) -> int:
    from monitor.errors import AlignwatchError, ConfigError

    try:
        config = _load(args.config, "WARNING" if args.json else None)
        store = config.store.sqlite_at(Path(args.store))
        code, daemon = _replay_into(config, args, store, args.dead_letters)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except AlignwatchError as exc:
        return _fail(str(exc), 1)
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(summary(daemon)).decode() + "\n")
    else:
        _print_summary(daemon)
    return code


def _replay_into(
    config: Config, args: argparse.Namespace, store: StoreConfig, dead_letters: Path | None
) -> tuple[int, Daemon]:
    """Run the pipeline over ``args.input`` to its end, without scheduler or metrics server."""
    from monitor.config import DeadLetterConfig, FileSourceConfig, SourceConfig
    from monitor.daemon import Daemon
    from monitor.errors import ConfigError
    from monitor.progress import Progress

    if not args.input.is_file():
        raise ConfigError(f"input: no such file {args.input}")
    config = config.model_copy(
        update={
            "source": SourceConfig(type="file", file=FileSourceConfig(path=args.input)),
            "store": store,
            "dead_letter": DeadLetterConfig(
                type="file", path=dead_letters or config.dead_letter.path
            ),
        }
    )
    progress = None if args.quiet else Progress()
    deliver = getattr(args, "deliver", False)
    daemon = Daemon(
        config,
        scheduled=False,
        serve_metrics=False,
        on_batch=progress,
        deliver=deliver,
        drain_timeout=args.deliver_timeout if deliver else 0.0,
    )
    code = daemon.run()
    if daemon.undelivered:
        log.error("notifications still undelivered", extra={"pending": daemon.undelivered})
        code = code or 1
    if progress is not None:
        progress.finish(daemon.pipeline.totals)
    return code, daemon


def _baseline_build(args: argparse.Namespace) -> int:
    """Replay the file into a scratch store, pool every window, keep the snapshot."""
    import tempfile

    from monitor.errors import AlignwatchError, ConfigError

    try:
        config = _load(args.config)
        from monitor.drift import reference_from
        from monitor.store import open_store

        target = args.out or config.drift.reference.baseline
        if target is None:
            raise ConfigError("give --out, or set drift.reference.baseline in the config")

        with tempfile.TemporaryDirectory(prefix="alignwatch-baseline-") as scratch:
            scratch_store = config.store.sqlite_at(Path(scratch) / "s.db")
            code, _ = _replay_into(config, args, scratch_store, Path(scratch) / "dl.jsonl")
            store = open_store(scratch_store, config.windows)
            contents = [store.window_contents(window) for window, _ in store.results()]
            store.close()
        if not contents:
            raise ConfigError(f"input: {args.input} holds no valid records")
        snapshot = reference_from(contents, config.drift, reference_id=args.id)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(snapshot.to_bytes())
        partial.replace(target)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except AlignwatchError as exc:
        return _fail(str(exc), 1)
    records = sum(c.count for c in contents)
    print(f"baseline {snapshot.id}: {records:,} records from {args.input} -> {target}")
    return code


def summary(daemon: Daemon) -> dict[str, Any]:
    """The documented ``replay --json`` document."""
    records = daemon.pipeline.totals.summary()
    windows = [
        {
            "start": window.iso_start(),
            "end": window.iso_end(),
            "count": result["metrics"]["count"],
            "metrics": result["metrics"],
            "drift": result["drift"],
            "alerts": result["alerts"],
            "triggers": result.get("triggers", []),
            "bias": result.get("bias", {}),
        }
        for window, result in daemon.final_results
    ]
    return {"records": records, "windows": windows}


def _print_summary(daemon: Daemon) -> None:
    document = summary(daemon)
    records = document["records"]
    print("records: " + ", ".join(f"{key} {value:,}" for key, value in records.items()))
    for window in document["windows"]:
        metrics = window["metrics"]
        shown = [
            f"{name} {metrics[name]:.3g}"
            for name in _HEADLINE_METRICS
            if metrics.get(name) is not None
        ]
        drift = window["drift"]
        if drift:
            shown.append(
                "drift " + ("DRIFTED" if drift["drifted"] else "ok" if drift["tests"] else "-")
            )
        firing = [a["rule"] for a in window["alerts"] if a["state"] == "firing"]
        if firing:
            shown.append("firing " + ",".join(firing))
        print(f"{window['start']} .. {window['end']}: " + ", ".join(shown))


_HEADLINE_METRICS = (
    "count",
    "invalid_count",
    "late_count",
    "toxicity_mean",
    "refusal_mean",
    "reward_mean",
    "sentiment_mean",
    "response_tokens_mean",
)


def _check_config(args: argparse.Namespace) -> int:
    from monitor.config import load_config
    from monitor.errors import ConfigError
    from monitor.scoring import build_scorers

    try:
        config = load_config(args.config)
        build_scorers(config.scorers)
        if config.source.type == "kafka":
            from monitor.sources.kafka import consumer_options

            assert config.source.kafka is not None
            consumer_options(config.source.kafka)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    print(f"{args.config}: OK")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from monitor.api import openapi_document

    sys.stdout.write(openapi_document() + "\n")
    return 0


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"alignwatch: error: {message}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
