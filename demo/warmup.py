"""Warm-up at launch: the default model of each prediction tab is loaded in the background once the app serves.

A fresh ``python app.py`` answers its first page in a few seconds because nothing heavy is imported (torch,
transformers and the weights load when a model first runs). Without a warm-up the first question of a class then
waits for that load (the QA tab's XLM-R vocabulary and model: 15-20 s on two cores). ``start`` runs, in one daemon
thread, what each tab would load for its first answer: the model its first picker shows by default
(demo.pickers.default_pick: the best completed run of the task, else the first registry model with real weights
here), in the tabs' order QA, tweets, images (the slowest first). A request that arrives while its model is being
loaded waits for that same load (the predictor cache builds a model once) rather than loading a second copy.

``TRANSFER_LAB_WARMUP=0`` turns it off (a machine short of memory, or to measure a cold first answer); a model that
fails to load is logged and skipped: its tab's own request then says why, in one sentence.
"""
from __future__ import annotations

import logging
import threading
import time

from core.paths import env_switch

log = logging.getLogger("transfer_lab")

TASKS = ("qa", "tweets", "images")  # the slowest load first: it gains most from its head start


def enabled() -> bool:
    """``TRANSFER_LAB_WARMUP``: unset or 1/true/yes/on warms up, 0/false/no/off does not; else one sentence."""
    return env_switch("TRANSFER_LAB_WARMUP", True)


def default_refs(tasks=TASKS) -> list[tuple[str, str]]:
    """(task, ref) of each tab's default model, as its first picker shows it (tasks without one are left out)."""
    from demo.pickers import default_pick
    from demo.state import model_choices

    refs = []
    for task in tasks:
        ref, _ = default_pick(task, model_choices(task))
        if ref:
            refs.append((task, ref))
    return refs


def warm(tasks=TASKS) -> list[dict]:
    """Load each tab's default model into the app's predictor cache, one after the other: one record per model
    (task, ref, seconds, error: None or the reason it did not load)."""
    from demo.pickers import load_model, user_message

    done = []
    for task, ref in default_refs(tasks):
        t0 = time.perf_counter()
        try:
            load_model(ref, task)
            error = None
        except Exception as err:  # noqa: BLE001 - a warm-up never takes the app down; the tab says why itself
            error = user_message(err)
        done.append({"task": task, "ref": ref, "seconds": round(time.perf_counter() - t0, 2), "error": error})
        if error:
            log.warning("warm-up: %s (%s) did not load: %s", ref, task, error)
        else:
            log.info("warm-up: %s (%s) loaded in %.1f s", ref, task, done[-1]["seconds"])
    return done


def start(tasks=TASKS) -> threading.Thread | None:
    """Warm up in a daemon thread (None when TRANSFER_LAB_WARMUP turns it off)."""
    if not enabled():
        return None
    thread = threading.Thread(target=warm, args=(tasks,), name="transfer-lab-warmup", daemon=True)
    thread.start()
    return thread
