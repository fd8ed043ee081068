"""Image classification task: CIFAR-10 (or an image folder) with the registry's image models.

The frozen-feature cache lives here. With ``feature_extraction`` the whole backbone is frozen, so its pooled
output is computed once per training image and flip (and once per validation/test image), and epochs train the
head alone on cached tensors. With ``last_block`` the cache holds the input of the last block
(``Backbone.forward_prefix``). Frozen modules run in eval mode (core.freezing.set_train_mode), so the cached
tensors are exactly what the uncached path computes, and training on them gives the same predictions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.tasks.images import NAME
from core.tasks.images.data import ImageSplit, balanced_subset, decode_image, load_images, split_train_val
from core.errors import BadSettingError
from core.metrics import classification_metrics
from core.tasks.images.rows import ImageRow
from core.engine.task import EvalResult, ProgressFn, TaskRun


class FeatureCache:
    """Frozen-part outputs per split: ``train`` (2 flips, N, ...) and ``val``/``test`` (N, ...)."""

    def __init__(self, mode: str):
        self.mode = mode  # "features" (whole backbone frozen) or "prefix" (everything before the last block)
        self.tensors: dict[str, torch.Tensor] = {}

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


class ImageTask(TaskRun):
    task = NAME

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.splits: dict[str, ImageSplit] = {}
        self.labels: list[str] | None = None
        self.cache: FeatureCache | None = None

    # -- model ----------------------------------------------------------------------------------------------
    def build_model(self, labels=None):
        labels = labels or self.labels
        if labels is None:
            raise BadSettingError("Load the data (or give the label names) before building an image model.")
        self.labels = list(labels)
        request = self._build_request(len(self.labels))
        from core.tasks.images.nets import set_normalization

        return self._finish_model(set_normalization(self.spec.build(self.spec, request), self.cfg.normalize))

    # -- data -----------------------------------------------------------------------------------------------
    def load_data(self, splits=("train", "val", "test")):
        cfg = self.cfg
        if "train" in splits or "val" in splits:
            full = load_images("train", cfg.data_dir)
            full = full.subset(balanced_subset(full.labels, cfg.train_limit, cfg.seed))
            train_idx, val_idx = split_train_val(full.labels, cfg.val_fraction, cfg.seed)
            self.splits["train"] = full.subset(train_idx)
            if len(val_idx):
                self.splits["val"] = full.subset(val_idx)
            self.labels = self.labels or list(full.classes)
        if "test" in splits:
            test = load_images("test", cfg.data_dir)
            self.splits["test"] = test.subset(balanced_subset(test.labels, cfg.eval_limit, cfg.seed))
            self.labels = self.labels or list(test.classes)
        for name, split in self.splits.items():
            if self.labels and list(split.classes) != self.labels:
                raise BadSettingError(f"The {name} split's classes {list(split.classes)} differ from the model's "
                                      f"labels {self.labels}.")

    def describe(self):
        return {
            "labels": self.labels,
            "data": {name: {"n": len(s), "source": s.source} for name, s in self.splits.items()},
            "input_size": getattr(self.model, "input_size", None),
        }

    # -- feature cache --------------------------------------------------------------------------------------
    def _cache_mode(self) -> str | None:
        if not self.cfg.feature_cache or self.model.backbone is None:
            return None
        if self.cfg.strategy == "feature_extraction":
            return "features"
        if self.cfg.strategy == "last_block" and self.model.backbone.splittable:
            return "prefix"
        return None

    @torch.no_grad()
    def _frozen_forward(self, images: torch.Tensor, flip: torch.Tensor | None, mode: str) -> torch.Tensor:
        x = self.model.preprocess(images, flip)
        if mode == "features":
            return self.model.forward_features(x)
        return self.model.backbone.forward_prefix(x)

    def _per_image_shape(self, mode: str) -> tuple[torch.Size, torch.dtype]:
        self.model.eval()
        sample = self.splits["train"].images[:1]
        out = self._frozen_forward(sample, None, mode)
        return out.shape[1:], out.dtype

    def prepare_training(self, progress: ProgressFn | None = None) -> dict:
        mode = self._cache_mode()
        if mode is None:
            self.cache = None
            return {"feature_cache": None}
        shape, dtype = self._per_image_shape(mode)
        n_train = len(self.splits["train"])
        n_flips = 2 if self.cfg.hflip else 1
        n_eval = sum(len(self.splits[s]) for s in ("val", "test") if s in self.splits)
        per_image = math.prod(shape) * torch.finfo(dtype).bits // 8
        need = per_image * (n_train * n_flips + n_eval)
        if need > self.cfg.cache_max_gb * 2**30:
            self.cache = None
            return {"feature_cache": None,
                    "feature_cache_skipped": f"needs {need / 2**30:.1f} GiB > cache_max_gb {self.cfg.cache_max_gb}"}
        self.model.eval()
        cache = FeatureCache(mode)
        total = n_train * n_flips + n_eval
        done = 0
        bs = self.cfg.eval_batch_size

        def fill(images: torch.Tensor, flip_value: bool | None) -> torch.Tensor:
            nonlocal done
            out = torch.empty((len(images), *shape), dtype=dtype, device=self.device)
            for i in range(0, len(images), bs):
                chunk = images[i:i + bs]
                flip = None if flip_value is None else torch.full((len(chunk),), flip_value)
                out[i:i + bs] = self._frozen_forward(chunk, flip, mode)
                done += len(chunk)
                if progress:
                    progress("cache", done, total)
            return out

        train_images = self.splits["train"].images
        flips = [fill(train_images, False)] + ([fill(train_images, True)] if n_flips == 2 else [])
        cache.tensors["train"] = torch.stack(flips)  # (flips, N, ...)
        for s in ("val", "test"):
            if s in self.splits:
                cache.tensors[s] = fill(self.splits[s].images, None)
        self.cache = cache
        return {"feature_cache": {"mode": mode, "bytes": cache.nbytes(), "per_image_shape": list(shape)}}

    def _head_from_cache(self, z: torch.Tensor) -> torch.Tensor:
        if self.cache.mode == "features":
            return self.model.forward_head(z)
        return self.model.forward_head(self.model.backbone.forward_last(z))

    # -- training -------------------------------------------------------------------------------------------
    def train_batches(self, epoch):
        order, g = self.epoch_order(epoch)
        n = len(order)
        flips = (torch.rand(n, generator=g) < 0.5) if self.cfg.hflip else torch.zeros(n, dtype=torch.bool)
        bs = self.cfg.batch_size
        return [(order[i:i + bs], flips[order[i:i + bs]]) for i in range(0, n, bs)]

    def train_step(self, batch):
        idx, flip = batch
        labels = self.splits["train"].labels[idx].to(self.device)
        if self.cache is not None:
            z = self.cache.tensors["train"][flip.long().to(self.cache.tensors["train"].device), idx]
            logits = self._head_from_cache(z)
        else:
            x = self.model.preprocess(self.splits["train"].images[idx], flip if self.cfg.hflip else None)
            logits = self.model.forward_head(self.model.forward_features(x))
        loss = F.cross_entropy(logits, labels)
        correct = int((logits.argmax(-1) == labels).sum())
        return loss, correct, len(idx)

    # -- evaluation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits_for(self, split: str, progress: ProgressFn | None = None) -> torch.Tensor:
        data = self.splits[split]
        self.model.eval()
        bs = self.cfg.eval_batch_size
        use_cache = self.cache is not None and split in self.cache.tensors
        out = []
        for i in range(0, len(data), bs):
            if use_cache:
                logits = self._head_from_cache(self.cache.tensors[split][i:i + bs])
            else:
                logits = self.model(self.model.preprocess(data.images[i:i + bs]))["logits"]
            out.append(logits.float().cpu())
            if progress:
                progress(f"eval:{split}", min(i + bs, len(data)), len(data))
        return torch.cat(out) if out else torch.empty(0, len(self.labels))

    def evaluate(self, split, progress=None):
        data = self.splits[split]
        logits = self.logits_for(split, progress)
        loss = float(F.cross_entropy(logits, data.labels)) if len(data) else float("nan")
        probs = logits.softmax(-1)
        pred = probs.argmax(-1)
        metrics = classification_metrics(data.labels.tolist(), pred.tolist(), self.labels)
        metrics["loss"] = loss
        predictions = []
        if split == "test":
            for i in range(len(data)):
                y, p = int(data.labels[i]), int(pred[i])
                predictions.append(ImageRow(
                    id=data.ids[i], index=i, label=y, label_name=self.labels[y], prediction=p,
                    prediction_name=self.labels[p], correct=y == p,
                    probabilities=[round(float(v), 5) for v in probs[i]]))
        return EvalResult(metrics, predictions)

    # -- inference ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_image(self, data: bytes, top_k: int = 5) -> list[dict]:
        """Top-k labels with probabilities for one encoded image (any size or mode)."""
        image = decode_image(data, size=self.model.input_size)[None]  # (1, 3, S, S)
        self.model.eval()
        probs = self.model(self.model.preprocess(image))["logits"].float().softmax(-1)[0]
        values, idx = probs.topk(min(top_k, len(probs)))
        return [{"label": self.labels[int(i)], "probability": float(v)} for v, i in zip(values, idx)]

    def predict_one(self, inputs: dict, top_k: int = 5) -> dict:
        return {"top": self.predict_image(inputs["image"], top_k=top_k)}
