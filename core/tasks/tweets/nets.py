"""The tweet networks behind core.tasks.tweets.models: the two heads, ``TweetClassifier`` and its builder.

Kept apart from ``models.py`` (the registry's tweet models, their weights and tokenizers, without torch) so that
listing models and the app's first page import no torch; imported when a model is built. Every name here stays
importable from ``core.tasks.tweets.models``. See that module for the heads and the forward convention.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from core.errors import BadInputError, BadSettingError
from core.registry import BuildRequest, ModelSpec
from core.tasks.tweets import LABELS, models
from core.tasks.tweets.models import GRU_HIDDEN, TextArch
from core.weights import RANDOM, WeightsSource


# ---------------------------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------------------------
class PooledLinearHead(nn.Module):
    """(B, H) pooled [CLS] -> (B,) logits."""

    feature_kind = "pooled"

    def __init__(self, hidden_size: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, 1)

    def forward(self, pooled: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.dropout(pooled)).squeeze(-1)  # (B,)


class BiGRUHead(nn.Module):
    """(B, T, H) hidden states + (B, T) right-padded mask -> (B,) logits via the bidirectional GRU's h_n."""

    feature_kind = "sequence"

    def __init__(self, hidden_size: int, gru_hidden: int = GRU_HIDDEN, dropout: float = 0.1):
        super().__init__()
        self.gru = nn.GRU(hidden_size, gru_hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * gru_hidden, 1)

    def final_states(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, 2G): [forward state at each row's last real token, backward state at its first token]."""
        b, t, _ = hidden_states.shape
        if attention_mask is None:
            lengths = torch.full((b,), t, dtype=torch.long)
        else:
            lengths = _right_padded_lengths(attention_mask)
        # enforce_sorted=False: PyTorch sorts by length inside and returns h_n in the batch's own order.
        packed = pack_padded_sequence(hidden_states, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)  # (2, B, G): [0] forward direction, [1] backward direction
        return torch.cat((h_n[0], h_n[1]), dim=-1)  # (B, 2G)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.dropout(self.final_states(hidden_states, attention_mask))).squeeze(-1)


def _right_padded_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """Row lengths of a right-padded mask (at least 1); BadInputError for any other padding."""
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    expected = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]  # (B, T)
    if not torch.equal(mask, expected):
        raise BadInputError("The GRU head needs right-padded batches: each attention mask must be 1s then 0s.")
    return lengths.clamp(min=1)


# ---------------------------------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------------------------------
class TweetClassifier(nn.Module):
    """BERT encoder + head. ``probs`` is P(real); ``label_names[i]`` names label id i (fake = 0, real = 1)."""

    label_names = LABELS

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder  # transformers BertModel with its pooler
        self.head = head
        self.weights: WeightsSource = RANDOM  # set by the builder to what the encoder holds
        self.spec_name = ""

    @property
    def feature_kind(self) -> str:
        """What :meth:`encoder_outputs` returns: "pooled" (B, H) or "sequence" (B, T, H)."""
        return self.head.feature_kind

    def encoder_outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """What the head reads: the pooled [CLS] (B, H) or the last hidden states (B, T, H)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out.pooler_output if self.feature_kind == "pooled" else out.last_hidden_state

    def forward_head(self, features: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None) -> dict:
        logits = self.head(features, attention_mask)  # (B,)
        out = {"logits": logits, "probs": torch.sigmoid(logits)}
        if labels is not None:
            out["loss"] = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> dict:
        features = self.encoder_outputs(input_ids, attention_mask, token_type_ids)
        return self.forward_head(features, attention_mask, labels)

    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def last_block_modules(self) -> list[nn.Module]:
        """The top transformer layer, plus the pooler when the head reads it (the GRU head does not)."""
        modules = [self.encoder.encoder.layer[-1]]
        if self.feature_kind == "pooled":
            modules.append(self.encoder.pooler)
        return modules


# ---------------------------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------------------------
def build_tweet_model(spec: ModelSpec, request: BuildRequest, arch: TextArch) -> TweetClassifier:
    """Build a registry tweet model; ``model.weights`` (a WeightsSource) says what its encoder holds.

    Random parts (the head, an untrained encoder) come from ``request.seed`` without touching the global RNG.
    Build under ``with torch.device("meta"):`` with ``weights="random"`` to count parameters without memory.
    """
    if request.num_classes not in (1, 2):
        raise BadSettingError(f"Tweet models give one logit (real vs fake), so num_classes must be 2, "
                              f"not {request.num_classes}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.seed)
        encoder, weights = models._load_encoder(spec, arch, request.weights)  # patchable there
        hidden, dropout = encoder.config.hidden_size, encoder.config.hidden_dropout_prob
        head = PooledLinearHead(hidden, dropout) if arch.head == "pooled" else BiGRUHead(hidden, GRU_HIDDEN, dropout)
    model = TweetClassifier(encoder, head)
    model.weights = weights
    model.spec_name = spec.name
    return model
