"""Scoring throughput on the bundled sample: each scorer's ``score()`` (the daemon path)
against a bare batched forward of the same model on the same texts, side by side.

The bare forward is what one would write by hand: texts in arrival order, batches of the
scorer's batch size, each padded to its longest text, under ``torch.inference_mode``;
no bucketing, no worker thread. Both sides get the same micro-batches (the daemon's
``batch.max_size``) and run them interleaved, one micro-batch each in alternating order,
so load from other processes on a shared machine hits both alike. Target on CPU:
daemon / bare >= 0.85.

    .venv/bin/python bench/scoring.py [--repeat 2] [--micro-batch 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from detectors.bias.scorers import IdentityMentions, Sentiment
from detectors.scorers import create_scorer
from detectors.scorers.torch import bilstm
from detectors.scorers.torch.embeddings import default_embedder

SAMPLE = Path(__file__).resolve().parents[1] / "config" / "sample" / "records.jsonl"


@dataclass(frozen=True)
class Pair:
    prompt: str
    response: str


Run = Callable[[Sequence[Pair]], None]


def load_sample(path: Path) -> list[Pair]:
    """Records with a string prompt and response; malformed lines are skipped, as the
    daemon would dead-letter them."""
    pairs = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            prompt, response = record.get("prompt"), record.get("response")
            if isinstance(prompt, str) and isinstance(response, str):
                pairs.append(Pair(prompt, response))
    return pairs


def _batches(texts: Sequence[str], size: int) -> list[list[str]]:
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


def bare_bilstm(batch_size: int) -> Callable[[Sequence[str]], np.ndarray]:
    tokenizer_path, weights_path = bilstm.package_files()
    tokenizer = bilstm.KerasWordTokenizer.load(tokenizer_path)
    model = bilstm.JigsawBiLSTM.from_keras_h5(weights_path)

    def run(texts: Sequence[str]) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate(
                [
                    model(bilstm.pad_front([tokenizer.ids(t) for t in batch])).numpy()
                    for batch in _batches(texts, batch_size)
                ]
            )

    return run


def bare_embedder(batch_size: int) -> Callable[[Sequence[str]], np.ndarray]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_embedder())
    model = AutoModel.from_pretrained(default_embedder()).eval()

    def run(texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for batch in _batches(texts, batch_size):
                enc = tokenizer(
                    batch, padding=True, truncation=True, max_length=256, return_tensors="pt"
                )
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out)

    return run


def cases(device: str) -> dict[str, tuple[Run, Run]]:
    """Scorer name -> (daemon path, bare path)."""
    toxicity = create_scorer("toxicity", {"device": device})
    embeddings = create_scorer("embeddings", {"device": device})
    reward = create_scorer("reward", {"device": device})
    sentiment, mentions = Sentiment(), IdentityMentions()
    tox_bare, emb_bare = bare_bilstm(64), bare_embedder(64)

    def proxy_bare(items: Sequence[Pair]) -> None:
        vectors = emb_bare([i.prompt for i in items] + [i.response for i in items])
        n = len(items)
        relevance = np.clip((vectors[:n] * vectors[n:]).sum(axis=1), 0.0, 1.0)
        _ = relevance * (1.0 - tox_bare([i.response for i in items])[:, 0])

    def vader_bare(items: Sequence[Pair]) -> None:
        for item in items:
            sentiment._vader.polarity_scores(item.response)

    def mentions_bare(items: Sequence[Pair]) -> None:
        for item in items:
            for category in mentions.lexicon.categories.values():
                category.mentioned(item.prompt)

    return {
        "toxicity": (toxicity.score, lambda items: tox_bare([i.response for i in items])),
        "embeddings": (
            embeddings.score,
            lambda items: emb_bare([i.prompt for i in items] + [i.response for i in items]),
        ),
        "reward": (reward.score, proxy_bare),
        "sentiment": (sentiment.score, vader_bare),
        "identity_mentions": (mentions.score, mentions_bare),
    }


def side_by_side(
    daemon: Run, bare: Run, micro: list[list[Pair]], repeat: int
) -> tuple[float, float]:
    """Total seconds of each path over ``repeat`` passes, interleaved per micro-batch."""
    daemon(micro[0])  # warm-up: first-call allocations, lazy inits
    bare(micro[0])
    totals = [0.0, 0.0]
    for rep in range(repeat):
        for k, batch in enumerate(micro):
            order = [(0, daemon), (1, bare)]
            for side, run in order if (k + rep) % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                run(batch)
                totals[side] += time.perf_counter() - started
    return totals[0], totals[1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--micro-batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    pairs = load_sample(args.sample)
    micro = [pairs[i : i + args.micro_batch] for i in range(0, len(pairs), args.micro_batch)]
    scored = len(pairs) * args.repeat
    print(
        f"{len(pairs)} records x {args.repeat}, micro-batches of {args.micro_batch}, "
        f"device {args.device}, {torch.get_num_threads()} torch threads"
    )
    print(f"{'scorer':<18} {'daemon rec/s':>13} {'bare rec/s':>11} {'ratio':>6}")
    totals = [0.0, 0.0]
    for name, (daemon, bare) in cases(args.device).items():
        d, b = side_by_side(daemon, bare, micro, args.repeat)
        totals = [totals[0] + d, totals[1] + b]
        print(f"{name:<18} {scored / d:>13.0f} {scored / b:>11.0f} {b / d:>6.2f}")
    d, b = totals
    print(f"{'whole stage':<18} {scored / d:>13.0f} {scored / b:>11.0f} {b / d:>6.2f}")


if __name__ == "__main__":
    main()
