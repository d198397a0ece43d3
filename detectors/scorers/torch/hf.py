"""Hugging Face models: loading that fails at start-up, and tokenise-pad-run on a runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from detectors.errors import DetectorError
from detectors.scorers.torch.batching import BatchRunner, pad_right
from detectors.scorers.torch.cache import MODELS

# Texts are cut at this many characters per allowed token before tokenising, so a 1 MB
# text costs no more than a long one. The cut changes what the model reads only when its
# first max_length tokens average more than 32 characters: whitespace-free junk.
CHARS_PER_TOKEN = 32

Head = Literal["encoder", "classifier"]


@dataclass(eq=False)
class Backbone:
    """A tokenizer and model loaded once and shared through the model cache."""

    tokenizer: Any
    model: torch.nn.Module
    max_positions: int | None


def load_backbone(model: str, head: Head, device: torch.device) -> Backbone:
    """The cached backbone for ``model`` (a local folder or a hub id) on ``device``."""
    source = _source(model)
    return MODELS.get(("hf", head, source, str(device)), lambda: _load(source, model, head, device))


def _source(model: str) -> str:
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise DetectorError(f"model={model!r}: no such model directory")
    return model  # a hub id, which must already be in the local Hugging Face cache offline


def _load(source: str, option: str, head: Head, device: torch.device) -> Backbone:
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # tqdm bars would interleave with JSON log lines
    loader = AutoModel if head == "encoder" else AutoModelForSequenceClassification

    def both(local_only: bool) -> tuple[Any, torch.nn.Module]:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        return tokenizer, loader.from_pretrained(source, local_files_only=local_only)

    try:
        try:  # the local cache first: no network round trips (or retries) when it is there
            tokenizer, net = both(local_only=True)
        except OSError:
            if Path(source).is_dir():
                raise
            tokenizer, net = both(local_only=False)
    except Exception as exc:  # transformers raises OSError, ValueError, hub errors...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DetectorError(
            f"model={option!r}: cannot load it ({reason}); with no network access, give a "
            "local directory or a model already in the Hugging Face cache"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if tokenizer.pad_token_id is None:
            raise DetectorError(f"model={option!r}: its tokenizer has no pad, eos or unk token")
    if getattr(net.config, "pad_token_id", None) is None:
        net.config.pad_token_id = tokenizer.pad_token_id
    positions = getattr(net.config, "max_position_embeddings", None) or getattr(
        net.config, "n_positions", None
    )
    return Backbone(tokenizer, net.eval().to(device), positions)


def resolve_max_length(requested: int | None, backbone: Backbone, default: int) -> int:
    """The token limit: ``requested`` or ``default``, never past the model's positions."""
    limit = backbone.max_positions
    if requested is None:
        return min(default, limit) if limit else default
    if limit and requested > limit:
        raise DetectorError(f"max_length={requested}: the model has only {limit} positions")
    return requested


class TextModel:
    """Tokenises texts (or text pairs), runs a backbone in length-sorted batches and
    returns named outputs per text in input order. Tokenising happens in the runner's
    worker thread, overlapping the previous batch's forward."""

    def __init__(self, backbone: Backbone, runner: BatchRunner, max_length: int) -> None:
        self.backbone = backbone
        self.runner = runner
        self.max_length = max_length
        tokenizer = backbone.tokenizer
        self._pad_id = tokenizer.pad_token_id
        self._types = "token_type_ids" in tokenizer.model_input_names
        self._fallback_id = next(
            i
            for i in (tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id, 0)
            if i is not None
        )

    def run(
        self,
        first: Sequence[str],
        second: Sequence[str] | None,
        forward: Callable[[dict[str, torch.Tensor]], Mapping[str, torch.Tensor]],
        *,
        special_tokens: bool = True,
        keep: Literal["head", "tail"] = "head",
    ) -> dict[str, np.ndarray]:
        """Named outputs of ``forward`` per text (or pair). Over-long inputs keep their
        ``head`` (the tokenizer's own truncation, pairs included) or, for single texts,
        their ``tail``, which is where a decoder's classification head reads."""
        if keep == "tail" and second is not None:
            raise ValueError("keep='tail' applies to single texts, not pairs")
        limit = self.max_length * CHARS_PER_TOKEN
        clipped = [len(t) > limit for t in first]
        first = [t[-limit:] if keep == "tail" else t[:limit] for t in first]
        if second is not None:
            clipped = [a or len(t) > limit for a, t in zip(clipped, second, strict=True)]
            second = [t[:limit] for t in second]
        lengths = [len(t) for t in first]
        if second is not None:
            lengths = [a + len(b) for a, b in zip(lengths, second, strict=True)]

        def prepare(indices: np.ndarray) -> dict[str, torch.Tensor]:
            rows = [first[i] for i in indices]
            pairs = None if second is None else [second[i] for i in indices]
            features, cut = self._encode(rows, pairs, special_tokens, keep)
            self.runner.stats.truncated += sum(
                1 for j, i in enumerate(indices) if clipped[i] or j in cut
            )
            ids, mask = pad_right(features["input_ids"], self._pad_id)
            inputs = {"input_ids": ids, "attention_mask": mask}
            if self._types:
                inputs["token_type_ids"] = pad_right(features["token_type_ids"], 0)[0]
            return inputs

        return self.runner.run(lengths, prepare, forward)

    def _encode(
        self, rows: list[str], pairs: list[str] | None, special_tokens: bool, keep: str
    ) -> tuple[dict[str, list[list[int]]], set[int]]:
        """Token features per row, cut at max_length, and the positions that were cut.

        ``head``: the tokenizer truncates, one pass, and its encodings' overflow tells
        which rows were cut. ``tail``: rows are encoded whole and keep their last tokens.
        """
        head = keep == "head"
        names = ["input_ids", "token_type_ids"] if self._types else ["input_ids"]
        encoded = self.backbone.tokenizer(
            rows,
            pairs,
            truncation=head,
            max_length=self.max_length if head else None,
            add_special_tokens=special_tokens,
            return_attention_mask=False,
            return_token_type_ids=self._types,
            verbose=False,
        )
        features = {name: list(encoded[name]) for name in names}
        if not head:
            cut = {j for j, ids in enumerate(features["input_ids"]) if len(ids) > self.max_length}
            for name in names:
                for j in cut:
                    features[name][j] = features[name][j][-self.max_length :]
        elif encoded.encodings is not None:
            cut = {j for j, encoding in enumerate(encoded.encodings) if encoding.overflowing}
        else:  # a tokenizer without Rust encodings: rows at the limit count as cut
            cut = {j for j, ids in enumerate(features["input_ids"]) if len(ids) >= self.max_length}
        for j, ids in enumerate(features["input_ids"]):
            if not ids:  # a model cannot read zero tokens; an empty text reads as one
                features["input_ids"][j] = [self._fallback_id]
                if self._types:
                    features["token_type_ids"][j] = [0]
        return features, cut
