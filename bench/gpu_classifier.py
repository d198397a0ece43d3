"""GPU throughput of a BERT-base-sized classifier at sequence length 128.

Builds the model from a config (random weights, nothing downloaded) and reports, for one
batch size: the bare model's sequences/s and achieved TFLOP/s (pre-tokenised tensors
already on the device), then the toxicity scorer's ``score()`` on the same model saved
to a folder (tokenising, bucketing, pinned copies, autocast) on texts of the same token
length, as sequences/s and its ratio to the bare forward. ``--tiny`` shrinks the model
so it runs on CPU in seconds. Run through bench/gpu.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from detectors.scorers.torch.embeddings import default_embedder
from detectors.scorers.torch.runtime import autocast_dtype, resolve_device
from detectors.scorers.torch.toxicity import Toxicity

BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


@dataclass(frozen=True)
class _Pair:
    prompt: str
    response: str


def forward_flops(hidden: int, layers: int, seq: int) -> float:
    """Matmul FLOPs of one sequence's forward (2 per multiply-add): the Q, K, V and output
    projections and the 4x feed-forward, plus attention scores and their use on V."""
    projections = 4 * hidden * hidden + 2 * hidden * 4 * hidden
    return layers * (2 * projections * seq + 4 * seq * seq * hidden)


def _rate(step: Callable[[], Any], items: int, seconds: float, device: torch.device) -> float:
    """Items per second of ``step`` over at least ``seconds``, after a warm-up."""
    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        runs += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return runs * items / (time.perf_counter() - started)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    device = resolve_device(args.device)
    sizes = TINY if args.tiny else BASE
    batch = args.batch_size or (8 if args.tiny else 256)
    seconds = args.seconds or (1.0 if args.tiny else 10.0)
    dtype = autocast_dtype(device, "auto")
    tokenizer = AutoTokenizer.from_pretrained(default_embedder())  # bert-base-uncased vocab
    config = BertConfig(
        vocab_size=len(tokenizer),
        intermediate_size=4 * sizes["hidden_size"],
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
        problem_type="multi_label_classification",
        **sizes,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval().to(device)
    ids = torch.randint(1000, len(tokenizer), (batch, args.seq), device=device)
    mask = torch.ones_like(ids)

    def bare() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype, enabled=bool(dtype)):
            model(input_ids=ids, attention_mask=mask).logits.float()

    bare_rate = _rate(bare, batch, seconds, device)

    # Whole-word vocabulary entries, one token each: seq - 2 of them fill the sequence.
    words = [w for w in tokenizer.convert_ids_to_tokens(range(2000, 12000)) if w.isalpha()]
    texts = [" ".join(words[k : k + args.seq - 2]) for k in range(4 * batch)]
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        scorer = Toxicity(model=folder, device=str(device), batch_size=batch, max_length=args.seq)
        items = [_Pair("", t) for t in texts]
        scorer_rate = _rate(lambda: scorer.score(items), len(items), seconds, device)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": "tiny" if args.tiny else "bert-base",
        "seq": args.seq,
        "batch_size": batch,
        "autocast": str(dtype).removeprefix("torch.") if dtype else "fp32",
        "bare_sequences_per_s": round(bare_rate, 1),
        "achieved_tflops": round(
            bare_rate
            * forward_flops(sizes["hidden_size"], sizes["num_hidden_layers"], args.seq)
            / 1e12,
            3,
        ),
        "scorer_sequences_per_s": round(scorer_rate, 1),
        "scorer_over_bare": round(scorer_rate / bare_rate, 3),
        "truncated": scorer.stats.truncated,
        "oom_splits": scorer.stats.oom_splits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny model, for a CPU smoke test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=None, help="time per measurement")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    results = measure(args)
    for key, value in results.items():
        print(f"{key:>24}: {value}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
