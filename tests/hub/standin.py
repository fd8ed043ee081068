"""A stand-in Hugging Face Hub: lays out, in a folder, the caches that a machine with internet would have filled.

Nothing here downloads anything. ``lay_out(root)`` writes

  ``root/hub/``       the huggingface_hub cache (``HF_HUB_CACHE``): ``models--<org>--<name>/refs/main`` holding a
                      commit hash and ``snapshots/<commit>/`` holding what ``save_pretrained`` writes (config.json,
                      model.safetensors, tokenizer.json and the tokenizer's own files). transformers and timm read
                      these through ``hf_hub_download`` / ``cached_file`` exactly as after a real download.
  ``root/datasets/``  the datasets cache (``HF_DATASETS_CACHE``): ``<org>___<name>/default/0.0.0/<hash>/`` with
                      ``dataset_info.json`` and one ``<name>-<split>.arrow`` per split. With HF_HUB_OFFLINE=1,
                      ``datasets.load_dataset("org/name")`` never opens the hub cache (it raises OfflineModeIsEnabled
                      before its first request and falls back to ``CachedDatasetModuleFactory``), so a repo snapshot
                      of csv/parquet files is not enough: the prepared arrow cache is what an offline load needs.
                      It is written by ``datasets`` itself (a local folder of tiny made-up rows prepared with
                      ``load_dataset_builder(...).download_and_prepare()``) and moved under the Hub id's name.

Models are tiny random networks of the checkpoint's real class (BertForPreTraining for bert-base-uncased, an
``...ForQuestionAnswering`` for the PQuAD fine-tunes, ...) and config type, with tokenizers built from small
made-up vocabularies; timm models are full-size (timm loads only a weights file into its own architecture), so
only small ones are written. ``lay_out`` returns what a loader must find: a fingerprint of every tensor written.

Run as ``python standin.py load ROOT`` (HF_HOME / HF_HUB_CACHE / HF_DATASETS_CACHE / HF_HUB_OFFLINE set by the
caller, because huggingface_hub reads them when it is imported) it loads everything through Transfer Lab's own
code and prints one JSON object; tests/hub/test_hub_paths.py compares the two.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

COMMIT = "5a1d0f3e9c8b7a6d5e4f3a2b1c0d9e8f7a6b5c4d"  # what refs/main points at in every stand-in repo

# Timm models really loaded (full size: timm loads a weights file into its own architecture). fp16 halves what is
# written; timm copies it into the fp32 model, so the fingerprints are taken of the fp16 values as fp32.
TIMM_LOADED = {"efficientnet_lite0": "float32", "deit_small_distilled": "float16"}
AUTO_CHECKED = ("bert_base", "xlmr_pquad", "deit_small_distilled")  # also built with weights="auto" (the default)

# ------------------------------------------------------------------------------------------- vocabularies
_SPECIALS_WORDPIECE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_ENGLISH = ["the", "covid", "vaccine", "masks", "work", "stay", "home", "is", "a", "hoax", "cases", "new", "##s",
            "##ing", "face", "with", "medical", "mask", "5g", "cure", "hello", "world"]
_PERSIAN = ["پایتخت", "ایران", "تهران", "است", "کجا", "شهر", "بزرگ", "ترین", "در", "و", "کدام", "##ها"]
SAMPLE_ENGLISH = "Masks work, stay home"
SAMPLE_PERSIAN = "پایتخت ایران کجا است"
SAMPLE_PERSIAN_CONTEXT = "تهران پایتخت ایران است و بزرگ ترین شهر ایران است"


def wordpiece_vocab(words: list[str]) -> dict[str, int]:
    return {w: i for i, w in enumerate(_SPECIALS_WORDPIECE + words)}


def unigram_vocab(specials: list[str], words: list[str], tail: list[str] = ()) -> list[tuple[str, float]]:
    """SentencePiece-style (piece, log-probability) list: specials first, then ``▁word`` pieces and characters."""
    chars = sorted({c for w in words for c in w})
    pieces = [(s, 0.0) for s in specials]
    pieces += [("▁" + w, -2.0 - i * 0.01) for i, w in enumerate(words)]
    pieces += [("▁", -5.0)] + [(c, -8.0) for c in chars]
    return pieces + [(s, 0.0) for s in tail]


# ------------------------------------------------------------------------------------------- repos
@dataclass(frozen=True)
class TextRepo:
    """One transformers checkpoint: the class it was saved with (as on the Hub), a tiny config, a tokenizer."""

    repo_id: str
    model_class: str  # transformers class the checkpoint is saved from
    config_class: str
    config: dict
    tokenizer: str  # "bert" (WordPiece, uncased), "xlmr" (Unigram), "albert" (Unigram)
    words: tuple[str, ...] = tuple(_ENGLISH)
    seed: int = 0
    extra: dict = field(default_factory=dict)


_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
             max_position_embeddings=64)
_TINY_DISTILBERT = dict(dim=32, n_layers=2, n_heads=2, hidden_dim=37, max_position_embeddings=64)
_TINY_ALBERT = dict(_TINY, embedding_size=16)


def text_repos() -> dict[str, TextRepo]:
    """Every transformers checkpoint a registry model (or its tokenizer) loads from the Hub, by hub id."""
    return {r.repo_id: r for r in [
        # Pretraining checkpoints keep their pooler (the tweet models' pooled head reads it) under "bert.".
        TextRepo("bert-base-uncased", "BertForPreTraining", "BertConfig", dict(_TINY), "bert", seed=1),
        TextRepo("digitalepidemiologylab/covid-twitter-bert-v2", "BertForPreTraining", "BertConfig", dict(_TINY),
                 "bert", seed=2),
        TextRepo("sentence-transformers/all-MiniLM-L6-v2", "BertModel", "BertConfig", dict(_TINY), "bert", seed=3),
        TextRepo("HooshvareLab/bert-fa-base-uncased", "BertForMaskedLM", "BertConfig", dict(_TINY), "bert",
                 tuple(_PERSIAN), seed=4),
        TextRepo("m3hrdadfi/albert-fa-base-v2", "AlbertForMaskedLM", "AlbertConfig", dict(_TINY_ALBERT), "albert",
                 tuple(_PERSIAN), seed=5),
        TextRepo("FacebookAI/xlm-roberta-base", "XLMRobertaForMaskedLM", "XLMRobertaConfig",
                 dict(_TINY, max_position_embeddings=66, type_vocab_size=1), "xlmr", tuple(_PERSIAN + _ENGLISH),
                 seed=6),
        TextRepo("Gholamreza/distilbert-fa-zwnj-base-finetuned-pquad", "DistilBertForQuestionAnswering",
                 "DistilBertConfig", dict(_TINY_DISTILBERT), "bert", tuple(_PERSIAN), seed=7),
        TextRepo("Gholamreza/xlm-roberta-base-finetuned-pquad", "XLMRobertaForQuestionAnswering",
                 "XLMRobertaConfig", dict(_TINY, max_position_embeddings=66, type_vocab_size=1), "xlmr",
                 tuple(_PERSIAN + _ENGLISH), seed=8),
        # multilingual-e5-small is a BertModel over XLM-R's SentencePiece vocabulary.
        TextRepo("intfloat/multilingual-e5-small", "BertModel", "BertConfig", dict(_TINY), "xlmr",
                 tuple(_PERSIAN + _ENGLISH), seed=9),
    ]}


def snapshot_dir(hub_cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    """``<cache>/<type>s--<org>--<name>/snapshots/<COMMIT>/``, with ``refs/main`` pointing at it (created)."""
    folder = hub_cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snap = folder / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def fingerprint(tensor) -> str:
    """The first 16 hex digits of sha1 over the tensor's values as contiguous float32."""
    import torch

    data = tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


def fingerprints(module) -> dict[str, str]:
    return {k: fingerprint(v) for k, v in module.state_dict().items()}


def _perturb(module) -> None:
    """Move every float tensor off its initial value (LayerNorm ones, zero biases, BatchNorm statistics), so
    that a loader that silently left a tensor freshly initialised cannot match its fingerprint."""
    import torch

    with torch.no_grad():
        for tensor in module.state_dict(keep_vars=True).values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor) * 0.05)


def _tokenizer(repo: TextRepo):
    import transformers as T

    if repo.tokenizer == "bert":
        cls = T.DistilBertTokenizer if repo.config_class == "DistilBertConfig" else T.BertTokenizer
        return cls(vocab=wordpiece_vocab(list(repo.words)), do_lower_case=True)
    if repo.tokenizer == "xlmr":  # <s> 0, <pad> 1, </s> 2, <unk> 3 ... <mask> last, as XLM-R's vocabulary
        return T.XLMRobertaTokenizer(vocab=unigram_vocab(["<s>", "<pad>", "</s>", "<unk>"], list(repo.words),
                                                         ["<mask>"]))
    if repo.tokenizer == "albert":  # <pad> 0, <unk> 1, [CLS] 2, [SEP] 3, [MASK] 4, as ALBERT's spiece.model
        return T.AlbertTokenizer(vocab=unigram_vocab(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"],
                                                     list(repo.words)))
    raise ValueError(repo.tokenizer)


def write_text_repo(hub_cache: Path, repo: TextRepo) -> dict:
    """Save one tiny checkpoint and its tokenizer into the cache; what a loader must find in it."""
    import torch
    import transformers as T

    tokenizer = _tokenizer(repo)
    config = getattr(T, repo.config_class)(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                            **repo.config, **repo.extra)
    torch.manual_seed(repo.seed)
    model = getattr(T, repo.model_class)(config).eval()
    _perturb(model)
    snap = snapshot_dir(hub_cache, repo.repo_id)
    model.save_pretrained(snap)  # config.json + model.safetensors
    tokenizer.save_pretrained(snap)  # tokenizer.json + tokenizer_config.json (+ vocab files it writes)
    expected = {"encoder": fingerprints(model.base_model), "vocab_size": len(tokenizer),
                "sample_ids": {s: tokenizer(s)["input_ids"] for s in (SAMPLE_ENGLISH, SAMPLE_PERSIAN)},
                "files": sorted(p.name for p in snap.iterdir())}
    if hasattr(model, "qa_outputs"):
        expected["qa_outputs"] = fingerprints(model.qa_outputs)
    return expected


def write_timm_repo(hub_cache: Path, hub_id: str, dtype: str) -> dict:
    """``timm/<name>.<tag>``: the full state dict of timm's architecture as model.safetensors (+ config.json)."""
    import safetensors.torch
    import timm
    import torch

    name = hub_id.split("/", 1)[1]
    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False)  # with its 1000-class classifier, as the Hub file has it
    _perturb(net)
    state = {k: v.detach().to(getattr(torch, dtype)).contiguous() if v.is_floating_point() else v.contiguous()
             for k, v in net.state_dict().items()}
    snap = snapshot_dir(hub_cache, hub_id)
    safetensors.torch.save_file(state, str(snap / "model.safetensors"))
    cfg = dict(net.pretrained_cfg, architecture=name.split(".")[0])
    (snap / "config.json").write_text(json.dumps({"architecture": cfg["architecture"], "num_classes": 1000,
                                                  "pretrained_cfg": {k: v for k, v in cfg.items()
                                                                     if isinstance(v, (str, int, float, list,
                                                                                       tuple, type(None)))}}))
    return {"backbone": {k: fingerprint(v) for k, v in state.items()}}


# ------------------------------------------------------------------------------------------- data sets
TWEET_ROWS = {  # made up; the Hub copy's files are train.csv / val.csv / test.csv with id,tweet,label
    "train": [(1, "Masks work 😷", "real"), (2, "5G spreads the virus", "fake"), (3, "Stay home", "real")],
    "val": [(10, "The vaccine is a hoax", "fake"), (11, "New cases fell this week", "real")],
    "test": [(20, "Garlic cures covid", "fake"), (21, "Wash your hands", "real"), (22, "Bleach cure", "fake")],
}
PQUAD_ROWS = {  # made up, SQuAD-style rows as datasets holds them; ids are float64 on the Hub copy
    "validation": [
        dict(id=1801.0, title="تهران", context=SAMPLE_PERSIAN_CONTEXT, question=SAMPLE_PERSIAN,
             answers={"text": ["تهران"], "answer_start": [0]}),
        dict(id=1802.0, title="تهران", context=SAMPLE_PERSIAN_CONTEXT, question="پایتخت فرانسه کجا است",
             answers={"text": [], "answer_start": []}),
    ],
    "test": [dict(id=1901.0, title="ایران", context=SAMPLE_PERSIAN_CONTEXT, question="بزرگ ترین شهر ایران کدام است",
                  answers={"text": ["تهران"], "answer_start": [0]})],
    "train": [dict(id=1701.0, title="ایران", context=SAMPLE_PERSIAN_CONTEXT, question="تهران کجا است",
                   answers={"text": ["پایتخت ایران"], "answer_start": [6]})],
}
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_LABELS = {"train": [3, 8, 0], "test": [9, 1]}


def _cifar_image(split: str, i: int):
    """A 32x32 RGB image whose pixel (0, 0) encodes split and index, so a loader's output can be checked."""
    import numpy as np
    from PIL import Image

    arr = np.full((32, 32, 3), 17 * (i + 1), dtype=np.uint8)
    arr[0, 0] = (len(split), i, 200)
    arr[5:9, :, 1] = 250  # a band: rows 5-8 green
    return Image.fromarray(arr)


def _write_dataset(datasets_cache: Path, build: Path, repo_id: str, write_files) -> Path:
    """Prepare a local folder of data files with ``datasets`` and move the result under the Hub id's name."""
    import datasets

    name = repo_id.split("/")[-1]
    source = build / "src" / name
    source.mkdir(parents=True)
    write_files(source)
    builder = datasets.load_dataset_builder(str(source), cache_dir=str(build / "prepared"))
    builder.download_and_prepare()
    prepared = Path(builder.cache_dir)  # <prepared>/<name>/<config>/<version>/<hash>
    relative = prepared.relative_to(build / "prepared").parts
    target = datasets_cache.joinpath(repo_id.replace("/", "___"), *relative[1:])
    shutil.copytree(prepared, target)
    return target


def write_datasets(datasets_cache: Path, build: Path) -> dict:
    """The three data sets' Hub copies as ``datasets`` caches them after an online load."""
    import csv

    import datasets

    from core.tasks.qa.data import PQUAD_HUB_ID
    from core.tasks.tweets.data import HUB_DATASET_ID

    def tweets(folder: Path):
        for split, rows in TWEET_ROWS.items():
            with (folder / f"{split}.csv").open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["id", "tweet", "label"])
                writer.writerows(rows)

    def pquad(folder: Path):
        for split, rows in PQUAD_ROWS.items():
            datasets.Dataset.from_list(rows).to_parquet(str(folder / f"{split}.parquet"))

    def cifar(folder: Path):
        features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=list(CIFAR_CLASSES))})
        for split, labels in CIFAR_LABELS.items():
            rows = {"img": [_cifar_image(split, i) for i in range(len(labels))], "label": labels}
            datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"{split}.parquet"))

    out = {}
    for repo_id, writer in ((HUB_DATASET_ID, tweets), (PQUAD_HUB_ID, pquad), ("uoft-cs/cifar10", cifar)):
        out[repo_id] = str(_write_dataset(datasets_cache, build / repo_id.replace("/", "__"), repo_id, writer))
    return out


def lay_out(root: Path, timm_models: dict[str, str] = TIMM_LOADED) -> dict:
    """Write the stand-in Hub under ``root``; returns what each loader must find (JSON-able)."""
    from core import registry

    root = Path(root)
    hub_cache, datasets_cache = root / "hub", root / "datasets"
    expected = {"text": {}, "timm": {}}
    for repo_id, repo in text_repos().items():
        expected["text"][repo_id] = write_text_repo(hub_cache, repo)
    for name, dtype in timm_models.items():
        expected["timm"][name] = write_timm_repo(hub_cache, registry.get(name).hub_id, dtype)
    expected["datasets"] = write_datasets(datasets_cache, root / "build")
    shutil.rmtree(root / "build")
    return expected


# ------------------------------------------------------------------------------------------- loading, in a subprocess
def load_everything(timm_models: list[str]) -> dict:
    """Load every stand-in through Transfer Lab's own code; what was found, as JSON-able values."""
    import torch

    from core import registry

    out: dict = {"models": {}, "tokenizers": {}, "hub_tokenizers": {}, "auto": {}, "data": {}, "errors": {}}

    def attempt(key, fn):
        try:
            return fn()
        except Exception as err:  # recorded, so that one failure does not hide the others
            out["errors"][key] = f"{type(err).__name__}: {err}"[:600]
            return None

    for spec in registry.list_models():
        if spec.task == "images" and spec.name not in timm_models:
            continue
        if spec.hub_id is None:
            continue
        request = registry.BuildRequest(num_classes=registry.get_task(spec.task).num_outputs, weights="hub")
        model = attempt(f"build:{spec.name}", lambda: registry.build(spec.name, request))
        if model is None:
            continue
        record = {"weights": model.weights.to_json()}
        if spec.task == "images":
            record["backbone"] = fingerprints(model.backbone.net)
            with torch.no_grad():
                pixels = model.preprocess(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
                record["logits_shape"] = list(model(pixels)["logits"].shape)
        else:
            record["encoder"] = fingerprints(model.encoder)
            record["head"] = fingerprints(model.head)
            record["head_is_trained"] = __import__("core.weights", fromlist=["x"]).head_is_trained(spec, model.weights)
        out["models"][spec.name] = record
        if spec.task in ("tweets", "qa"):
            attempt(f"tokenizer:{spec.name}", lambda: out["tokenizers"].__setitem__(
                spec.name, _tokenizer_record(spec, model)))
            with _offline_packages_hidden():
                attempt(f"hub-tokenizer:{spec.name}", lambda: out["hub_tokenizers"].__setitem__(
                    spec.name, _tokenizer_record(spec, model, forward=True)))

    # "auto" on a machine whose Hub is unreachable (TRANSFER_LAB_OFFLINE=1) still reads the Hub cache first.
    for name in AUTO_CHECKED:
        request = registry.BuildRequest(num_classes=registry.get_task(registry.get(name).task).num_outputs)
        attempt(f"auto:{name}", lambda: out["auto"].__setitem__(name, registry.build(name, request).weights.to_json()))

    from core.tasks.images.data import load_cifar10_hub
    from core.tasks.qa.data import load_pquad
    from core.tasks.tweets.data import load_split

    for split in ("train", "val", "test"):
        attempt(f"tweets:{split}", lambda: out["data"].__setitem__(
            f"tweets:{split}", [[t.id, t.text, t.label] for t in load_split(split, source="hub")]))
    for split in ("validation", "test", "train"):
        attempt(f"pquad:{split}", lambda: out["data"].__setitem__(
            f"pquad:{split}", [[e.id, e.question, list(map(list, e.answers)), e.is_impossible]
                               for e in load_pquad(split)]))
    for split in ("train", "test"):
        def cifar(split=split):
            s = load_cifar10_hub(split)
            return {"shape": list(s.images.shape), "dtype": str(s.images.dtype), "labels": s.labels.tolist(),
                    "classes": list(s.classes), "corner": s.images[:, :, 0, 0].tolist(),
                    "band": s.images[:, 1, 5:9, :].float().mean().item(), "ids": s.ids, "source": s.source}
        attempt(f"cifar:{split}", lambda: out["data"].__setitem__(f"cifar:{split}", cifar()))
    return out


@contextlib.contextmanager
def _offline_packages_hidden():
    """As on a machine without the offline packages: the MiniLM and e5 tokenizer packages are not found, so a
    tokenizer can only come from the Hub cache. (With them, packaged models prefer the package's tokenizer, and
    offline the XLM-R models too: the same vocabulary as the real checkpoint, but not the stand-in's tiny one.)"""
    import core.tasks.qa.models as qa_models
    import core.tasks.tweets.models as tweet_models

    def missing():
        raise ImportError("hidden by the stand-in Hub test")

    saved = tweet_models.minilm_package_dir, qa_models._e5_tokenizer
    tweet_models.minilm_package_dir, qa_models._e5_tokenizer = (lambda: None), missing
    try:
        yield
    finally:
        tweet_models.minilm_package_dir, qa_models._e5_tokenizer = saved


def _tokenizer_record(spec, model, forward: bool = False) -> dict:
    """Where the model's tokenizer came from, what it makes of a sample, and (``forward``) the shape of one
    forward pass of the model on what it tokenised."""
    import torch

    if spec.task == "tweets":
        from core.tasks.tweets.data import encode_tweets
        from core.tasks.tweets.models import load_tokenizer

        tokenizer = load_tokenizer(spec.name)
        if forward:
            batch = encode_tweets([SAMPLE_ENGLISH], tokenizer, max_length=16)
            with torch.no_grad():
                forward = list(model(**batch)["probs"].shape)
    else:
        from core.tasks.qa.data import QAExample, prepare_windows
        from core.tasks.qa.models import load_qa_tokenizer

        tokenizer = load_qa_tokenizer(spec.name)
        if forward:
            example = QAExample("1", "", SAMPLE_PERSIAN_CONTEXT, SAMPLE_PERSIAN, (("تهران", 0),), False)
            windows = prepare_windows([example], tokenizer, max_length=32, stride=8)
            keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in windows]
            with torch.no_grad():
                forward = list(model(**{k: torch.tensor(windows[k]) for k in keys})["start_logits"].shape)
    sample = SAMPLE_ENGLISH if spec.task == "tweets" else SAMPLE_PERSIAN
    return {"source": tokenizer.transfer_lab_source, "vocab_size": len(tokenizer),
            "sample_ids": tokenizer(sample)["input_ids"], "forward_shape": forward}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: import core
    command, root = sys.argv[1], Path(sys.argv[2])
    if command == "write":
        print(json.dumps(lay_out(root)))
    elif command == "load":
        print("\nSTANDIN-JSON " + json.dumps(load_everything(sys.argv[3].split(",") if len(sys.argv) > 3 else
                                                              list(TIMM_LOADED))))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} write|load ROOT [timm,models]")
