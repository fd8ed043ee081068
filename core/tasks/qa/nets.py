"""The QA networks behind core.tasks.qa.models: the span head, ``QAModel``, ``TrainedRowsEmbedding``, the loss and
the builder.

Kept apart from ``models.py`` (the registry's QA models, their configs, weights and tokenizers, without torch) so
that listing models and the app's first page import no torch; imported when a model is built. Every name here
stays importable from ``core.tasks.qa.models``. See that module for the forward, the split and the memory levers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import BadSettingError
from core.registry import BuildRequest, ModelSpec
from core.tasks.qa import models
from core.tasks.qa.models import HEAD_DROPOUT, QAArch
from core.weights import RANDOM, WeightsSource


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------
class QAHead(nn.Module):
    """(B, T, H) hidden states -> start and end logits, each (B, T)."""

    def __init__(self, hidden_size: int, dropout: float = HEAD_DROPOUT, linear: nn.Linear | None = None):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.qa_outputs = linear if linear is not None else nn.Linear(hidden_size, 2)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.qa_outputs(self.dropout(hidden_states))  # (B, T, 2)
        return logits[..., 0].float(), logits[..., 1].float()  # (B, T) each; float32 for the loss under autocast


class TrainedRowsEmbedding(nn.Module):
    """A word-embedding table of which only the rows in ``trained_ids`` train: the frozen pretrained table
    (``weight``) plus a trainable copy of those rows (``trained_rows``).

    Why: e5-small's table has 250,037 rows x 384 (96M of its 118M parameters), but a fine-tuning run's windows
    use a few thousand tokens. In full fine-tuning every other row gets a zero gradient at every step, and with
    no weight decay Adam, AdamW and SGD never move a row whose gradients are all zero; so training only the rows
    the training windows use is the same computation, without the dense 250k-row gradient and the optimizer's
    two (or one) 250k-row state tensors. The padding row is never trained (``nn.Embedding``'s ``padding_idx``
    zeroes its gradient too).
    """

    def __init__(self, table: nn.Embedding, trained_ids: torch.Tensor):
        super().__init__()
        ids = torch.unique(trained_ids.to(torch.long).flatten())  # sorted, once each
        if len(ids) and (int(ids[0]) < 0 or int(ids[-1]) >= table.num_embeddings):
            raise BadSettingError(f"Token ids must lie in 0..{table.num_embeddings - 1} to train their rows.")
        if table.padding_idx is not None:
            ids = ids[ids != table.padding_idx]
        self.num_embeddings, self.embedding_dim = table.num_embeddings, table.embedding_dim
        self.padding_idx = table.padding_idx
        self.weight = table.weight  # the same Parameter: frozen, rebuilt from the pretrained source on reopening
        self.weight.requires_grad_(False)
        ids = ids.to(self.weight.device)
        self.register_buffer("trained_ids", ids)  # saved with the weights: reopening rebuilds this module
        self.trained_rows = nn.Parameter(self.weight.detach()[ids].clone())
        slot = torch.full((self.num_embeddings,), -1, dtype=torch.long, device=ids.device)
        slot[ids] = torch.arange(len(ids), device=ids.device)
        self.register_buffer("slot", slot, persistent=False)  # token id -> row of trained_rows, -1: frozen

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        slot = self.slot[input_ids]
        frozen = F.embedding(input_ids, self.weight, self.padding_idx)
        trained = F.embedding(slot.clamp(min=0), self.trained_rows)  # frozen positions read row 0, masked below
        return torch.where((slot >= 0).unsqueeze(-1), trained, frozen)

    def merged_weight(self) -> torch.Tensor:
        """The whole table as it now stands: the pretrained rows with the trained ones written over them."""
        return self.weight.detach().index_copy(0, self.trained_ids, self.trained_rows.detach())

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, trained rows={len(self.trained_ids)}"


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor,
              end_positions: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the start and end cross-entropies over the window's tokens (positions clamped into the window,
    as transformers does, so a label past a trimmed window cannot index out of range). ``lengths``: real tokens
    per window; the padding after them is left out of the softmax, so a window's loss does not depend on how far
    its batch (or a micro-batch of it) is padded."""
    t = start_logits.shape[1]
    start = start_positions.clamp(0, t - 1)
    end = end_positions.clamp(0, t - 1)
    if lengths is not None:
        padding = torch.arange(t, device=start_logits.device)[None, :] >= lengths.to(start_logits.device)[:, None]
        lowest = torch.finfo(start_logits.dtype).min
        start_logits = start_logits.masked_fill(padding, lowest)
        end_logits = end_logits.masked_fill(padding, lowest)
    return (F.cross_entropy(start_logits, start) + F.cross_entropy(end_logits, end)) / 2


class QAModel(nn.Module):
    """Encoder + span head. ``family`` is "bert" (BERT, e5), "xlmr", "albert" or "distilbert"."""

    def __init__(self, encoder: nn.Module, head: QAHead, family: str):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.family = family
        self.register_buffer("null_threshold", torch.zeros(()))  # tuned on val; saved with the weights
        self.weights: WeightsSource = RANDOM  # set by the builder to what it loaded
        self.spec_name = ""

    @property
    def hidden_size(self) -> int:
        config = self.encoder.config
        return getattr(config, "hidden_size", None) or config.dim  # DistilBERT calls it dim

    @property
    def max_positions(self) -> int:
        config = self.encoder.config
        # XLM-R counts positions from padding_idx + 1, so two of its 514 positions are never a token's.
        return config.max_position_embeddings - (2 if self.family == "xlmr" else 0)

    @property
    def uses_token_types(self) -> bool:
        """Whether the encoder reads segment ids (DistilBERT has none; XLM-R has a single segment)."""
        return self.family in ("bert", "albert") and getattr(self.encoder.config, "type_vocab_size", 1) > 1

    @property
    def splittable(self) -> bool:
        """Whether :meth:`forward_prefix` / :meth:`forward_last` exist (BERT-like stacks of separate layers)."""
        return self.family in ("bert", "xlmr")

    # -- forward --------------------------------------------------------------------------------------------
    def _encoder_kwargs(self, input_ids, attention_mask, token_type_ids) -> dict:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self.uses_token_types:
            kwargs["token_type_ids"] = token_type_ids
        return kwargs

    def encoder_outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H) last hidden states."""
        return self.encoder(**self._encoder_kwargs(input_ids, attention_mask, token_type_ids)).last_hidden_state

    def forward_head(self, hidden_states: torch.Tensor, start_positions: torch.Tensor | None = None,
                     end_positions: torch.Tensor | None = None, lengths: torch.Tensor | None = None) -> dict:
        start_logits, end_logits = self.head(hidden_states)  # (B, T) each
        out = {"start_logits": start_logits, "end_logits": end_logits}
        if start_positions is not None and end_positions is not None:
            out["loss"] = span_loss(start_logits, end_logits, start_positions, end_positions, lengths)
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None) -> dict:
        hidden = self.encoder_outputs(input_ids, attention_mask, token_type_ids)
        return self.forward_head(hidden, start_positions, end_positions)

    # -- the split used by the last_block cache (BERT-like encoders) ----------------------------------------
    def _layers(self) -> nn.ModuleList:
        if not self.splittable:
            raise BadSettingError(f"A {self.family} encoder cannot be split before its last layer.")
        return self.encoder.encoder.layer

    def _layer_mask(self, states: torch.Tensor, attention_mask: torch.Tensor):
        # a forward: transformers was imported (ensure_transformers) when the encoder was built
        from transformers.masking_utils import create_bidirectional_mask

        # The same mask the encoder's own forward builds for its layers (eager, sdpa, ...).
        return create_bidirectional_mask(config=self.encoder.config, inputs_embeds=states,
                                         attention_mask=attention_mask)

    def forward_prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H): the input of the last encoder layer (embeddings and every layer before it)."""
        kwargs = self._encoder_kwargs(input_ids, attention_mask, token_type_ids)
        states = self.encoder.embeddings(input_ids=input_ids, token_type_ids=kwargs.get("token_type_ids"))
        mask = self._layer_mask(states, attention_mask)
        for layer in self._layers()[:-1]:
            states = layer(states, mask)
        return states

    def forward_last(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H) last hidden states from :meth:`forward_prefix`'s output."""
        return self._layers()[-1](states, self._layer_mask(states, attention_mask))

    # -- memory levers --------------------------------------------------------------------------------------
    def word_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def train_rows_only(self, token_ids: torch.Tensor) -> TrainedRowsEmbedding:
        """Make only the word-embedding rows of ``token_ids`` trainable (:class:`TrainedRowsEmbedding`); the
        rest of the table stays as loaded and frozen. Returns the new module (already in place)."""
        table = self.word_embeddings()
        if isinstance(table, TrainedRowsEmbedding):
            raise BadSettingError("The word embeddings already train a subset of their rows.")
        compact = TrainedRowsEmbedding(table, token_ids)
        self.encoder.set_input_embeddings(compact)
        return compact

    @property
    def trained_rows(self) -> TrainedRowsEmbedding | None:
        table = self.word_embeddings()
        return table if isinstance(table, TrainedRowsEmbedding) else None

    def set_activation_checkpointing(self, on: bool = True) -> None:
        """Keep only each encoder layer's input during a training forward and recompute the layer in the
        backward pass (transformers' activation checkpointing, non-reentrant): activation memory of one layer
        instead of all of them, for about one more forward pass of compute. Off in eval mode either way."""
        if on:
            self.encoder.config.use_cache = False  # an encoder has no cache; transformers warns unless it is off
            self.encoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.encoder.activation_checkpointing_disable()

    @property
    def activation_checkpointing(self) -> bool:
        return bool(self.encoder.is_activation_checkpointing)

    # -- freezing protocol ----------------------------------------------------------------------------------
    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def last_block_modules(self) -> list[nn.Module]:
        """The top transformer layer (no encoder here has a norm after it); ALBERT: its shared layer group."""
        if self.family == "albert":
            return [self.encoder.encoder.albert_layer_groups[-1]]
        if self.family == "distilbert":
            return [self.encoder.transformer.layer[-1]]
        return [self.encoder.encoder.layer[-1]]


# ---------------------------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------------------------
def build_qa_model(spec: ModelSpec, request: BuildRequest, arch: QAArch) -> QAModel:
    """Build a registry QA model; ``model.weights`` (a WeightsSource) says what it holds.

    A new head is initialised like transformers' (normal, std 0.02, zero bias) from ``request.seed`` without
    touching the global RNG. Build under ``with torch.device("meta"):`` with ``weights="random"`` to count
    parameters without memory.
    """
    if request.num_classes not in (1, 2):  # the CLI's default for qa is 2: start and end
        raise BadSettingError(f"QA models give two logits per token (start, end), so num_classes must be 2, "
                              f"not {request.num_classes}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.seed)
        encoder, linear, weights = models._load_parts(spec, arch, request.weights)  # patchable there
        hidden = getattr(encoder.config, "hidden_size", None) or encoder.config.dim
        head = QAHead(hidden, HEAD_DROPOUT, linear)
        if linear is None:
            nn.init.normal_(head.qa_outputs.weight, std=0.02)
            nn.init.zeros_(head.qa_outputs.bias)
    model = QAModel(encoder, head, arch.family)
    model.weights = weights
    model.spec_name = spec.name
    return model
