"""A linear SVM on a frozen backbone's features: one more row in the strategy comparison.

scikit-learn's LinearSVC is fitted on standardised pooled features of the training images (no flips), then
folded into one Linear layer (``w = coef / scale``, ``b = intercept - w @ mean``) on top of the same frozen
backbone. The result is saved as an ordinary run (head "linear"), so ``eval``, ``predict`` and the UI reopen it
like any other. Its "probabilities" are a softmax over SVM margins: a ranking, not calibrated probabilities.

>>> run = fit_svm(TrainConfig(task="images", model="efficientnet_lite0", train_limit=2000))  # doctest: +SKIP
"""
from __future__ import annotations

import time

import numpy as np
import torch

from core.config import TrainConfig
from core.tasks.images import NAME
from core.errors import BadSettingError
from core.store.runs import Run, create_run
from core.engine.fit import make_task, run_config


def fit_svm(cfg: TrainConfig, C: float = 1.0, runs_root: str | None = None) -> Run:
    """Fit, evaluate on the test split and save as a run; returns the run."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if cfg.task != NAME:
        raise BadSettingError("The SVM comparison is available for the images task.")
    if not (np.isfinite(C) and C > 0):
        raise BadSettingError(f"The SVM's C must be a positive number; got {C}.")
    cfg.strategy, cfg.head, cfg.hflip, cfg.feature_cache, cfg.epochs = "feature_extraction", "linear", False, True, 1
    cfg.cache_max_gb = max(cfg.cache_max_gb, 64.0)  # the SVM needs the features in memory whatever their size
    cfg.validate()
    run = create_run(cfg.model, "svm", runs_root)
    try:
        task = make_task(cfg)
        task.load_data(("train", "test"))
        task.build_model()
        prepared = task.prepare_training()
        x = task.cache.tensors["train"][0].flatten(1).double().cpu().numpy()  # (N, D): unflipped images
        y = task.splits["train"].labels.numpy()
        t0 = time.monotonic()
        scaler = StandardScaler().fit(x)
        svm = LinearSVC(C=C, max_iter=5000).fit(scaler.transform(x), y)
        fit_seconds = time.monotonic() - t0
        coef = svm.coef_ if len(task.labels) > 2 else np.vstack([-svm.coef_, svm.coef_]) / 2
        intercept = svm.intercept_ if len(task.labels) > 2 else np.array([-svm.intercept_[0], svm.intercept_[0]]) / 2
        w = coef / scaler.scale_
        b = intercept - w @ scaler.mean_
        linear = task.model.heads[0][1]
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w).float())
            linear.bias.copy_(torch.from_numpy(b).float())
        result = task.evaluate("test")
        config = run_config(task, prepared, lr=0.0)
        config["classifier"] = f"linear SVM (scikit-learn LinearSVC, C={C}, standardised features)"
        run.write_config(config)
        run.save_weights(task.state_to_save())
        metrics = dict(result.metrics)
        metrics.update(parameters=task.parameter_counts(), fit_seconds=fit_seconds,
                       feature_seconds=prepared.get("prepare_seconds"), seconds_per_epoch=[fit_seconds],
                       mean_seconds_per_epoch=fit_seconds, svm_iterations=int(svm.n_iter_))
        run.write_metrics(metrics)
        run.write_predictions(result.predictions)
        run.set_status("completed", f"Finished: test accuracy {metrics['accuracy']:.4f} (linear SVM).")
        return run
    except Exception as err:
        run.set_status("failed", str(err))
        raise
