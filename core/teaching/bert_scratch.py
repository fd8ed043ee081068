"""A BERT encoder written from scratch in plain torch, to read next to the maths, and checked against transformers.

The pieces, in the order the data meets them (B = batch, T = tokens, H = hidden size, h = heads, d = H / h):

1. :class:`Embeddings`: ``x_t = LayerNorm(E_word[id_t] + E_type[segment_t] + E_pos[t])`` then dropout, (B, T, H).
2. :func:`scaled_dot_product_attention`: ``softmax(Q K^T / sqrt(d) + mask) V`` for every head at once.
3. :class:`MultiHeadSelfAttention`: Q, K, V projections, split into h heads of d, attention, heads concatenated,
   one output projection W_O.
4. :class:`FeedForward`: ``W_2 gelu(W_1 x + b_1) + b_2`` on every token on its own, H -> 4H -> H.
5. :class:`EncoderLayer`: each of the two sub-blocks wrapped as ``LayerNorm(x + dropout(sublayer(x)))``
   (BERT normalises after the residual sum, "post-LN").
6. :class:`ScratchBert`: embeddings, a stack of L layers, and BERT's pooler ``tanh(W h_[CLS] + b)``.

:func:`from_bert` copies a transformers ``BertModel``'s weights in through an explicit table of names
(:func:`bert_parameter_names`); :func:`compare_with_bert` measures the largest difference per layer, and
:func:`attention_maps` returns each layer's (h, T, T) probabilities as numpy, the format
:func:`core.explain.rollout.attention_rollout` takes.

>>> from transformers import BertConfig, BertModel
>>> _ = torch.manual_seed(0)
>>> bert = BertModel(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
...                             intermediate_size=32, max_position_embeddings=16)).eval()
>>> scratch = from_bert(bert)
>>> ids = torch.tensor([[2, 7, 9, 3, 0]]); mask = torch.tensor([[1, 1, 1, 1, 0]])
>>> diff = compare_with_bert(scratch, bert, ids, mask)
>>> max(diff["hidden"] + diff["attention"]) < 1e-5
True
>>> [a.shape for a in attention_maps(scratch(ids, mask), attention_mask=mask)]
[(4, 4, 4), (4, 4, 4)]

Run it on the real MiniLM weights: ``python -m core.teaching.bert_scratch "the cat sat on the mat"``.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import BadInputError, BadSettingError, TransferLabError
from core.lazy import ensure_transformers

# config.hidden_act -> the function. BERT's "gelu" is the exact one, x * Phi(x) with the normal CDF (erf); the
# "_new"/"_pytorch_tanh" variants are its tanh approximation.
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


@dataclass(frozen=True)
class EncoderConfig:
    """The sizes a BERT encoder is built from (the subset of transformers' ``BertConfig`` the maths needs)."""

    vocab_size: int
    hidden_size: int  # H
    num_layers: int  # L
    num_heads: int  # h
    intermediate_size: int  # the feed-forward width, 4H in BERT
    max_positions: int = 512
    type_vocab_size: int = 2  # segments A and B
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    pooler: bool = True

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise BadSettingError(f"The hidden size ({self.hidden_size}) must split evenly into "
                                  f"{self.num_heads} attention heads.")
        if self.activation not in ACTIVATIONS:
            raise BadSettingError(f"The activation {self.activation!r} is not written out here; use one of "
                                  f"{', '.join(ACTIVATIONS)}.")

    @property
    def head_size(self) -> int:
        """d = H / h, the width of one head's queries, keys and values."""
        return self.hidden_size // self.num_heads

    @classmethod
    def from_bert_config(cls, config, pooler: bool = True) -> "EncoderConfig":
        """The sizes of a transformers ``BertConfig`` (BadSettingError for what this encoder does not write out)."""
        if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
            raise BadSettingError("This scratch encoder is BERT's encoder only; a decoder with cross-attention "
                                  "is not written out.")
        position_type = getattr(config, "position_embedding_type", "absolute")
        if position_type != "absolute":
            raise BadSettingError(f"Only absolute (learnt) position embeddings are written out, not "
                                  f"{position_type!r}.")
        if not isinstance(config.hidden_act, str):
            raise BadSettingError("The checkpoint's activation is a function object; name one of "
                                  f"{', '.join(ACTIVATIONS)} in its config instead.")
        return cls(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                   num_layers=config.num_hidden_layers, num_heads=config.num_attention_heads,
                   intermediate_size=config.intermediate_size, max_positions=config.max_position_embeddings,
                   type_vocab_size=config.type_vocab_size, layer_norm_eps=config.layer_norm_eps,
                   hidden_dropout=config.hidden_dropout_prob, attention_dropout=config.attention_probs_dropout_prob,
                   activation=config.hidden_act, pooler=pooler)


# ---------------------------------------------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------------------------------------------
class Embeddings(nn.Module):
    """Token ids (B, T) and segment ids (B, T) -> one vector per token (B, T, H).

    Three learnt tables are looked up and added: the word piece itself (V, H), its segment, A = 0 or B = 1 in a
    sentence pair (2, H), and its position 0..T-1 (max positions, H), which is the only thing that tells attention
    -- otherwise blind to order -- where a token stands. LayerNorm then rescales each token's vector to zero mean
    and unit variance over its H features (times a learnt gain, plus a learnt bias), and dropout follows.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,) the same for every row
        # Summed in transformers' order (word + segment, then + position) so the floats round the same way.
        x = self.word(input_ids) + self.token_type(token_type_ids)  # (B, T, H)
        x = x + self.position(positions)[None]  # (1, T, H) broadcast over the batch
        return self.dropout(self.norm(x))  # (B, T, H)


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 key_mask: torch.Tensor | None = None, scale: float | None = None,
                                 dropout: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(Q K^T * scale, masked) V``: (outputs (B, h, T, d), probabilities (B, h, T, S)).

    query (B, h, T, d), key and value (B, h, S, d); key_mask (B, S), True (or 1) for the keys that may be looked at.
    ``scale`` defaults to 1 / sqrt(d): a dot product of d unit-variance terms has variance d, and without the
    scaling the softmax would saturate onto one key and pass almost no gradient. Masked keys get the most negative
    float before the softmax, so their probability is exactly 0 (the most negative float rather than -inf: a row
    with every key masked then becomes uniform instead of NaN). The probabilities returned are those before
    dropout, which is identity in eval mode anyway.

    >>> q = k = v = torch.eye(2)[None, None]                      # (1, 1, 2, 2): two orthogonal tokens
    >>> out, p = scaled_dot_product_attention(q, k, v, key_mask=torch.tensor([[1, 0]]))
    >>> p[0, 0].tolist()                                          # both tokens may only look at token 0
    [[1.0, 0.0], [1.0, 0.0]]
    """
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale  # (B, h, T, S): how well query t matches key s
    if key_mask is not None:
        hidden = ~key_mask.bool()[:, None, None, :]  # (B, 1, 1, S) broadcast over heads and queries
        scores = scores.masked_fill(hidden, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)  # each row sums to 1 over the S keys
    mixed = dropout(probs) if dropout is not None else probs
    return torch.matmul(mixed, value), probs  # (B, h, T, d): a weighted average of the values


class MultiHeadSelfAttention(nn.Module):
    """(B, T, H) -> (B, T, H), and the attention probabilities (B, h, T, T).

    Every token is projected three times, to a query (what it looks for), a key (what it offers) and a value (what
    it passes on), each (B, T, H). The H features are cut into h heads of d = H / h, so that each head attends on its
    own in a d-dimensional subspace; the heads' outputs are put back side by side (B, T, H) and mixed by W_O.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.num_heads, self.head_size = cfg.num_heads, cfg.head_size
        self.scale = 1.0 / math.sqrt(cfg.head_size)  # 1 / sqrt(d)
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.output = nn.Linear(cfg.hidden_size, cfg.hidden_size)  # W_O
        self.dropout = nn.Dropout(cfg.attention_dropout)  # on the probabilities: randomly drops who-looks-at-whom

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H) -> (B, h, T, d): head i holds features i*d .. (i+1)*d - 1."""
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_size).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, T, d) -> (B, T, H): the heads concatenated again."""
        b, _, t, _ = x.shape
        return x.transpose(1, 2).reshape(b, t, self.num_heads * self.head_size)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.split_heads(self.query(x))  # (B, h, T, d)
        k = self.split_heads(self.key(x))
        v = self.split_heads(self.value(x))
        heads, probs = scaled_dot_product_attention(q, k, v, key_mask, self.scale, self.dropout)
        return self.output(self.merge_heads(heads)), probs  # (B, T, H), (B, h, T, T)


class FeedForward(nn.Module):
    """(B, T, H) -> (B, T, H), each token on its own: up to the intermediate width, the activation, back down."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.up = nn.Linear(cfg.hidden_size, cfg.intermediate_size)  # W_1
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size)  # W_2
        self.activation = ACTIVATIONS[cfg.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.up(x)))  # (B, T, I) in between


class EncoderLayer(nn.Module):
    """One transformer block: attention then feed-forward, each as ``LayerNorm(x + dropout(sublayer(x)))``.

    The residual sum lets each token keep its own state and add what it gathered; attention is the only place
    where tokens exchange information, the feed-forward block transforms each token separately.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.attention = MultiHeadSelfAttention(cfg)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(cfg)
        self.output_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        attended, probs = self.attention(x, key_mask)  # (B, T, H), (B, h, T, T)
        x = self.attention_norm(x + self.dropout(attended))
        x = self.output_norm(x + self.dropout(self.feed_forward(x)))
        return x, probs


@dataclass
class EncoderOutput:
    """What one forward pass returns; the field names follow transformers' BertModel output."""

    last_hidden_state: torch.Tensor  # (B, T, H)
    hidden_states: tuple[torch.Tensor, ...]  # L + 1 of (B, T, H): the embeddings, then each layer's output
    attentions: tuple[torch.Tensor, ...]  # L of (B, h, T, T), softmax probabilities before dropout
    pooler_output: torch.Tensor | None  # (B, H) tanh(W h_[CLS] + b), None without a pooler


class ScratchBert(nn.Module):
    """The encoder: embeddings, L encoder layers, and (when the config says so) BERT's [CLS] pooler.

    ``forward(input_ids, attention_mask=None, token_type_ids=None)`` takes (B, T) tensors: the mask is 1 for real
    tokens and 0 for padding (padding is never looked at, though padded positions still get a state), segment ids
    default to 0 (a single sentence).
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size) if cfg.pooler else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> EncoderOutput:
        attention_mask, token_type_ids = self._checked(input_ids, attention_mask, token_type_ids)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        hidden, attentions = [x], []
        for layer in self.layers:
            x, probs = layer(x, attention_mask)
            hidden.append(x)
            attentions.append(probs)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None  # (B, H) from [CLS]
        return EncoderOutput(x, tuple(hidden), tuple(attentions), pooled)

    def _checked(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask, segment ids) with defaults filled in; BadInputError for inputs the tables cannot look up."""
        cfg = self.config
        if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.dtype.is_floating_point:
            raise BadInputError("input_ids must be a (batch, tokens) tensor of integer token ids.")
        if input_ids.shape[1] == 0:
            raise BadInputError("The input has no tokens; encode at least one.")
        if input_ids.shape[1] > cfg.max_positions:
            raise BadInputError(f"The input has {input_ids.shape[1]} tokens; this encoder has position embeddings "
                                f"for {cfg.max_positions}.")
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= cfg.vocab_size:
            raise BadInputError(f"Token ids must lie in 0..{cfg.vocab_size - 1}, the encoder's vocabulary.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise BadInputError(f"The attention mask is {tuple(attention_mask.shape)}; it must match the token "
                                f"ids, {tuple(input_ids.shape)}.")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif tuple(token_type_ids.shape) != tuple(input_ids.shape):
            raise BadInputError(f"The segment ids are {tuple(token_type_ids.shape)}; they must match the token "
                                f"ids, {tuple(input_ids.shape)}.")
        elif int(token_type_ids.min()) < 0 or int(token_type_ids.max()) >= cfg.type_vocab_size:
            raise BadInputError(f"Segment ids must lie in 0..{cfg.type_vocab_size - 1}.")
        return attention_mask.to(input_ids.device), token_type_ids.to(input_ids.device)


# ---------------------------------------------------------------------------------------------------------------
# Loading transformers' weights, and checking against transformers
# ---------------------------------------------------------------------------------------------------------------
# Inside each layer: scratch module -> transformers BertLayer module.
_LAYER_NAMES = (
    ("attention.query", "attention.self.query"),
    ("attention.key", "attention.self.key"),
    ("attention.value", "attention.self.value"),
    ("attention.output", "attention.output.dense"),
    ("attention_norm", "attention.output.LayerNorm"),
    ("feed_forward.up", "intermediate.dense"),
    ("feed_forward.down", "output.dense"),
    ("output_norm", "output.LayerNorm"),
)


def bert_parameter_names(num_layers: int, pooler: bool = True) -> dict[str, str]:
    """``{scratch parameter: transformers BertModel state-dict name}``, every parameter of both, written out.

    >>> names = bert_parameter_names(num_layers=1, pooler=False)
    >>> names["layers.0.attention.output.weight"], len(names)
    ('encoder.layer.0.attention.output.dense.weight', 21)
    """
    names = {
        "embeddings.word.weight": "embeddings.word_embeddings.weight",
        "embeddings.token_type.weight": "embeddings.token_type_embeddings.weight",
        "embeddings.position.weight": "embeddings.position_embeddings.weight",
        "embeddings.norm.weight": "embeddings.LayerNorm.weight",
        "embeddings.norm.bias": "embeddings.LayerNorm.bias",
    }
    for i in range(num_layers):
        for mine, theirs in _LAYER_NAMES:
            for part in ("weight", "bias"):
                names[f"layers.{i}.{mine}.{part}"] = f"encoder.layer.{i}.{theirs}.{part}"
    if pooler:
        names["pooler.weight"] = "pooler.dense.weight"
        names["pooler.bias"] = "pooler.dense.bias"
    return names


def _bert_body(model):
    """The BertModel inside ``model`` (itself, or the ``.bert`` of a BertFor... head model); BadSettingError else."""
    try:
        ensure_transformers()  # core/lazy.py: a thread-safe first import
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        raise BadSettingError("Loading BERT weights needs the transformers package.") from None
    if not isinstance(model, PreTrainedModel):
        raise BadSettingError(f"from_bert takes a transformers BertModel, not a {type(model).__name__}.")
    body = model.base_model
    model_type = getattr(body.config, "model_type", "")
    if model_type != "bert":
        # RoBERTa-family checkpoints share BERT's parameter names but number positions from padding_idx + 1, so
        # loading them here would run without error and give different outputs.
        raise BadSettingError(f"from_bert loads BERT-layout checkpoints (model_type 'bert'); this one is "
                              f"{model_type or type(body).__name__!r}.")
    return body


def from_bert(model) -> ScratchBert:
    """A :class:`ScratchBert` holding a transformers BertModel's weights (same device, dtype and train/eval mode).

    ``model`` is a ``BertModel`` or any ``BertFor...`` model (its ``.bert`` body is used). Every parameter is copied
    through :func:`bert_parameter_names`; a checkpoint with a parameter the table does not name, or missing one it
    names, is refused rather than half loaded.
    """
    bert = _bert_body(model)
    pooler = getattr(bert, "pooler", None) is not None
    scratch = ScratchBert(EncoderConfig.from_bert_config(bert.config, pooler=pooler))
    state = bert.state_dict()
    names = bert_parameter_names(scratch.config.num_layers, pooler)
    missing = [theirs for theirs in names.values() if theirs not in state]
    unmapped = sorted(set(state) - set(names.values()))
    if missing or unmapped:
        raise BadSettingError(f"This checkpoint does not have BERT's layout ({len(missing)} expected parameters "
                              f"missing, {len(unmapped)} unexpected, e.g. {(missing + unmapped)[0]}).")
    first = next(iter(state.values()))
    scratch = scratch.to(device=first.device, dtype=first.dtype)
    try:
        scratch.load_state_dict({mine: state[theirs] for mine, theirs in names.items()}, strict=True)
    except RuntimeError as err:  # a shape that differs from what the config says
        raise BadSettingError(f"This checkpoint's weights do not fit its own config: {str(err).splitlines()[-1]}") \
            from err
    return scratch.train(bert.training)


@torch.no_grad()
def bert_reference(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                   token_type_ids: torch.Tensor | None = None):
    """transformers' own forward on its eager attention path: (hidden states (L + 1), attentions (L), pooled)."""
    from core.explain.hygiene import eager_attention

    bert = _bert_body(model)
    with eager_attention(bert):  # the sdpa path computes no probabilities to compare
        out = bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                   output_hidden_states=True, output_attentions=True)
    return out.hidden_states, out.attentions, out.pooler_output


@torch.no_grad()
def compare_with_bert(scratch: ScratchBert, model, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None,
                      token_type_ids: torch.Tensor | None = None) -> dict:
    """Largest absolute differences, scratch vs transformers, on the same inputs (padded positions included).

    Returns ``{"hidden": [embeddings, layer 1, ..., layer L], "attention": [layer 1, ..., layer L],
    "pooled": float or None}``. Both models must be in eval mode: in training mode dropout draws differ.
    """
    if scratch.training or model.training:
        raise BadSettingError("Compare the two encoders in eval mode (call .eval() on both): dropout makes "
                              "training-mode outputs random.")
    ours = scratch(input_ids, attention_mask, token_type_ids)
    hidden, attentions, pooled = bert_reference(model, input_ids, attention_mask, token_type_ids)

    def gap(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.float() - b.float()).abs().max())

    return {
        "hidden": [gap(a, b) for a, b in zip(ours.hidden_states, hidden, strict=True)],
        "attention": [gap(a, b) for a, b in zip(ours.attentions, attentions, strict=True)],
        "pooled": gap(ours.pooler_output, pooled) if ours.pooler_output is not None and pooled is not None else None,
    }


def attention_maps(output: EncoderOutput, row: int = 0,
                   attention_mask: torch.Tensor | None = None) -> list[np.ndarray]:
    """Per layer, the (h, T, T) attention probabilities of one batch row as numpy, first layer first.

    This is the format of :func:`core.explain.capture.text_attentions` and what
    :func:`core.explain.rollout.attention_rollout` takes. With ``attention_mask`` (B, T) the padded positions are
    cut out (rows and columns), leaving the row's real tokens only.
    """
    if not -output.last_hidden_state.shape[0] <= row < output.last_hidden_state.shape[0]:
        raise BadSettingError(f"The batch has {output.last_hidden_state.shape[0]} rows; row {row} is not one.")
    maps = [a[row].detach().float().cpu().numpy() for a in output.attentions]  # each (h, T, T)
    if attention_mask is None:
        return maps
    keep = attention_mask[row].bool().cpu().numpy()  # (T,)
    return [m[:, keep][:, :, keep] for m in maps]


@torch.no_grad()
def text_attentions(scratch: ScratchBert, enc) -> list[np.ndarray]:
    """Per layer (h, T, T) attention of the scratch encoder for one encoded text (a core.explain.inputs.TextInput),
    the same list :func:`core.explain.capture.text_attentions` returns for a transformers encoder."""
    tensors = enc.tensors
    out = scratch(tensors["input_ids"], tensors.get("attention_mask"), tensors.get("token_type_ids"))
    return attention_maps(out)


# ---------------------------------------------------------------------------------------------------------------
# python -m core.teaching.bert_scratch "some sentence"
# ---------------------------------------------------------------------------------------------------------------
def _minilm():
    """(the packaged all-MiniLM-L6-v2 BertModel in eval mode, its tokenizer); WeightsUnavailableError without it."""
    from core.tasks.tweets.models import _package_encoder, load_tokenizer

    return _package_encoder().eval(), load_tokenizer("minilm")


def top_attended(probs: np.ndarray, tokens: Sequence[str], query: int = 0, k: int = 3) -> list[list[tuple[str, float]]]:
    """Per head, the k tokens that token ``query`` attends to most: [[(token, probability), ...], ...].

    >>> p = np.array([[[0.1, 0.9], [0.5, 0.5]]])                 # one head, two tokens
    >>> top_attended(p, ["[CLS]", "hi"], k=1)
    [[('hi', 0.9)]]
    """
    rows = np.asarray(probs)[:, query, :]  # (h, T)
    order = np.argsort(-rows, axis=-1, kind="stable")[:, :k]
    return [[(tokens[j], round(float(rows[h, j]), 4)) for j in order[h]] for h in range(rows.shape[0])]


def report(sentence: str, k: int = 3) -> str:
    """The text ``python -m core.teaching.bert_scratch`` prints for one sentence (MiniLM weights)."""
    from core.explain.rollout import attention_rollout

    sentence = (sentence or "").strip()
    if not sentence:
        raise BadInputError('Give a sentence to encode, e.g. python -m core.teaching.bert_scratch "the cat sat".')
    bert, tokenizer = _minilm()
    scratch = from_bert(bert).eval()
    enc = tokenizer(sentence, return_tensors="pt", truncation=True, max_length=scratch.config.max_positions)
    ids, mask, types = enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids")
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    diff = compare_with_bert(scratch, bert, ids, mask, types)
    maps = attention_maps(scratch(ids, mask, types))
    last = maps[-1]  # (h, T, T)

    cfg = scratch.config
    lines = [f"all-MiniLM-L6-v2 ({getattr(tokenizer, 'transfer_lab_source', 'package')}): {cfg.num_layers} layers, "
             f"{cfg.num_heads} heads of {cfg.head_size}, hidden {cfg.hidden_size}",
             f"{len(tokens)} tokens: {' '.join(tokens)}",
             "max |scratch - transformers BertModel (eager)|:",
             f"  embeddings  hidden {diff['hidden'][0]:.2e}"]
    for i, (h, a) in enumerate(zip(diff["hidden"][1:], diff["attention"]), start=1):
        lines.append(f"  layer {i:<5} hidden {h:.2e}  attention {a:.2e}")
    if diff["pooled"] is not None:
        lines.append(f"  pooler      {diff['pooled']:.2e}")
    lines.append(f"last layer: where {tokens[0]} looks, top {min(k, len(tokens))} per head")
    for h, top in enumerate(top_attended(last, tokens, query=0, k=k)):
        lines.append(f"  head {h:>2}: " + ", ".join(f"{t} {p:.2f}" for t, p in top))
    rolled = attention_rollout(maps)[None]  # (1, T, T): all layers, heads averaged, residual added
    lines.append(f"rollout over all {len(maps)} layers, {tokens[0]} traces back to: "
                 + ", ".join(f"{t} {p:.2f}" for t, p in top_attended(rolled, tokens, query=0, k=k)[0]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.teaching.bert_scratch",
        description="Encode a sentence with the from-scratch BERT on the packaged MiniLM weights and compare it "
                    "with transformers' BertModel, layer by layer.")
    parser.add_argument("sentence", nargs="*", help="the text to encode (several words may be given unquoted)")
    args = parser.parse_args(argv)
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar would bury the short report
    try:
        print(report(" ".join(args.sentence)))
    except TransferLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
