"""The all-MiniLM-L6-v2 weights, read from safetensors into the layout both forward passes use.

Matrices are pre-transposed so that activations go `x @ W`, the query, key and value projections
are fused into one (384, 1152) matrix, and the attention scale 1/sqrt(head size) is folded into
the query projection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._deps import require
from ..errors import ConfigError

__all__ = ["HEADS", "HIDDEN", "LAYERS", "LN_EPS", "POSITIONS", "Layer", "Weights", "load_weights"]

HIDDEN = 384
HEADS = 12
LAYERS = 6
LN_EPS = 1e-12
POSITIONS = 512
_INSTALL_EXTRA = "pip install 'stratarouter[local]'"

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class Layer:
    """One transformer block, matrices pre-transposed so that activations go `x @ W`."""

    qkv_w: F32  # (384, 1152): query | key | value
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_g: F32
    ln1_b: F32
    ff_in_w: F32  # (384, 1536)
    ff_in_b: F32
    ff_out_w: F32  # (1536, 384)
    ff_out_b: F32
    ln2_g: F32
    ln2_b: F32


@dataclass(frozen=True)
class Weights:
    word: F32
    position: F32
    token_type: F32
    ln_g: F32
    ln_b: F32
    layers: tuple[Layer, ...]


def load_weights(path: Path) -> Weights:
    """Read the safetensors file into float32 matrices laid out for `x @ W`."""
    numpy_st = require("safetensors.numpy", install=_INSTALL_EXTRA)
    raw: dict[str, NDArray[Any]] = numpy_st.load_file(str(path))
    anchor = "embeddings.word_embeddings.weight"
    prefix = next((p for p in ("", "bert.", "0.auto_model.") if p + anchor in raw), None)
    if prefix is None:
        raise ConfigError(f"{path} does not hold BERT weights (no tensor {anchor!r})")

    def get(name: str) -> F32:
        try:
            return np.ascontiguousarray(raw[prefix + name], dtype=np.float32)
        except KeyError as exc:
            raise ConfigError(f"{path} lacks the tensor {prefix + name!r}") from exc

    def t(name: str) -> F32:  # torch Linear stores (out, in); we want (in, out)
        return np.ascontiguousarray(get(name).T)

    layers = []
    scale = np.float32(1.0 / math.sqrt(HIDDEN // HEADS))  # folded into the query projection
    for i in range(LAYERS):
        p = f"encoder.layer.{i}.attention."
        f = f"encoder.layer.{i}."
        qkv_w = [t(f"{p}self.{n}.weight") for n in ("query", "key", "value")]
        qkv_b = [get(f"{p}self.{n}.bias") for n in ("query", "key", "value")]
        qkv_w[0], qkv_b[0] = qkv_w[0] * scale, qkv_b[0] * scale
        layers.append(
            Layer(
                qkv_w=np.ascontiguousarray(np.concatenate(qkv_w, axis=1)),
                qkv_b=np.concatenate(qkv_b),
                out_w=t(f"{p}output.dense.weight"),
                out_b=get(f"{p}output.dense.bias"),
                ln1_g=get(f"{p}output.LayerNorm.weight"),
                ln1_b=get(f"{p}output.LayerNorm.bias"),
                ff_in_w=t(f"{f}intermediate.dense.weight"),
                ff_in_b=get(f"{f}intermediate.dense.bias"),
                ff_out_w=t(f"{f}output.dense.weight"),
                ff_out_b=get(f"{f}output.dense.bias"),
                ln2_g=get(f"{f}output.LayerNorm.weight"),
                ln2_b=get(f"{f}output.LayerNorm.bias"),
            )
        )
    return Weights(
        word=get("embeddings.word_embeddings.weight"),
        position=get("embeddings.position_embeddings.weight"),
        token_type=get("embeddings.token_type_embeddings.weight"),
        ln_g=get("embeddings.LayerNorm.weight"),
        ln_b=get("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
    )
