"""How responsive the app stays while a fine-tune runs: tweet-classification latency through the HTTP API.

    TRANSFER_LAB_OFFLINE=1 .venv/bin/python bench/bench_app_latency.py [--model model:minilm] [--requests 20]
        [--train-limit 1000] [--users 20,60] [--per-user 3] [--data-dir ../shared/datasets]

One process serves the whole app (``demo.build_app``, queued, as ``make run`` does) on a free local port. Two
``gradio_client`` sessions stand for two browsers: session 1 starts a fine-tune from the Fine-tune tab's
``/start_training`` endpoint (MiniLM, full fine-tuning of the tweet classifier, by default 1,000 tweets and 1
epoch: minutes on a CPU); session 2 classifies tweets through ``/tweet_classify`` with ``--model``, first with
the machine idle (the peer figure), then while the job trains. A warm-up request loads the model first, so both
phases time predictions, not loading. Prints one JSON line: median and 90th-percentile latency per phase, their
ratio, the job's state and how many training steps it made while session 2 was timed (so the job really ran
alongside), and then cancels it (its checkpoint stays in a throwaway run store).

Then a class: for each ``--users`` count, that many simulated users at once (threads on loopback, each over
Gradio's plain HTTP API ``/gradio_api/call/tweet_classify``), each sending ``--per-user`` requests one after the
other while the job trains; p50/p95 over all of them. Request counts are bounded, so the bench stops by itself.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")

TWEETS = ["Masks save lives: wear one in crowded indoor places, says the health ministry.",
          "BREAKING: drinking hot water every 15 minutes kills the coronavirus in your throat!!!",
          "New cases fell to 1,204 today; 37 deaths were reported across the country.",
          "5G towers are spreading COVID-19, share before they delete this 😡",
          "Vaccination centres open on Saturday from 8am; bring your ID card."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(client, model: str, n: int) -> list[float]:
    """Latencies (ms) of n /tweet_classify requests, one at a time, cycling through TWEETS."""
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        status, *_ = client.predict(TWEETS[i % len(TWEETS)], model, None, None, api_name="/tweet_classify")
        out.append((time.perf_counter() - t0) * 1000)
        if status:
            raise SystemExit(f"/tweet_classify said: {status}")
    return out


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(ms: list[float]) -> dict:
    ordered = sorted(ms)
    return {"median_ms": round(statistics.median(ordered), 1), "p90_ms": round(_percentile(ordered, 0.9), 1),
            "p95_ms": round(_percentile(ordered, 0.95), 1), "n": len(ordered)}


def http_classify(url: str, model: str, text: str) -> float:
    """Latency (ms) of one /tweet_classify call over Gradio's HTTP API (submit, then read the result stream)."""
    import httpx

    t0 = time.perf_counter()
    with httpx.Client(timeout=300) as http:
        r = http.post(f"{url}/gradio_api/call/tweet_classify", json={"data": [text, model, None, None]})
        r.raise_for_status()
        body = http.get(f"{url}/gradio_api/call/tweet_classify/{r.json()['event_id']}").text
    if "event: complete" not in body:
        raise SystemExit(f"/tweet_classify failed: {body[:300]}")
    return (time.perf_counter() - t0) * 1000


def classroom(url: str, model: str, users: int, per_user: int) -> list[float]:
    """Latencies of ``users`` concurrent users, each sending ``per_user`` requests in a row."""
    from concurrent.futures import ThreadPoolExecutor

    def one_user(u: int) -> list[float]:
        return [http_classify(url, model, TWEETS[(u + i) % len(TWEETS)]) for i in range(per_user)]

    with ThreadPoolExecutor(max_workers=users) as pool:
        return [ms for user in pool.map(one_user, range(users)) for ms in user]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="model:minilm", help="the tweet model session 2 asks (a picker value)")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--train-limit", type=int, default=1000)
    ap.add_argument("--users", default="20,60", help="concurrent users per class phase, comma-separated")
    ap.add_argument("--per-user", type=int, default=3, help="requests each simulated user sends")
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    os.environ.setdefault("TRANSFER_LAB_RUNS", tempfile.mkdtemp(prefix="transfer_lab_bench_runs_"))
    if args.data_dir:
        os.environ["TRANSFER_LAB_DATA"] = args.data_dir

    import torch
    from gradio_client import Client

    from demo import build_app
    from demo.app import launch_kwargs
    from demo.state import jobs

    app = build_app()
    app.queue().launch(**launch_kwargs(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                                       quiet=True))
    url = app.local_url.rstrip("/")
    try:
        trainer, asker = Client(app.local_url, verbose=False), Client(app.local_url, verbose=False)
        timed(asker, args.model, 2)  # warm-up: loads the model into the shared predictor cache
        idle = timed(asker, args.model, args.requests)

        job_id, status = trainer.predict(None, "tweets", "minilm", "full", 1, "", 16, args.train_limit, 200, 0,
                                         "(none)", api_name="/start_training")
        if job_id is None:
            raise SystemExit(f"/start_training said: {status}")
        deadline = time.time() + 600
        while (jobs().snapshot(job_id).get("progress") or {}).get("phase") != "train":  # past data loading
            snap = jobs().snapshot(job_id)
            if time.time() > deadline or snap["status"] in ("failed", "completed", "cancelled"):
                raise SystemExit(f"the job did not start training: {snap['status']} {snap['message']}")
            time.sleep(1)
        before = jobs().snapshot(job_id)["progress"]
        t_busy = time.perf_counter()
        busy = timed(asker, args.model, args.requests)
        t_busy = time.perf_counter() - t_busy
        classes = {}
        for users in [int(u) for u in args.users.split(",") if u.strip()]:
            t0 = time.perf_counter()
            ms = classroom(url, args.model, users, args.per_user)
            phase = (jobs().snapshot(job_id).get("progress") or {}).get("phase")
            classes[str(users)] = {**summary(ms), "wall_s": round(time.perf_counter() - t0, 1),
                                   "job_phase_after": phase, "load_average": [round(x, 1) for x in os.getloadavg()]}
        snap = jobs().snapshot(job_id)
        steps = snap["progress"]["step"] - before["step"] if snap["progress"]["phase"] == "train" else None
        still = f"{snap['status']}, phase {(snap.get('progress') or {}).get('phase')}"
        jobs().cancel(job_id)
        jobs().wait(job_id, timeout=300)  # let the worker checkpoint and stop before the process exits
    finally:
        app.close()
    result = {"bench": "app_latency", "model": args.model, "idle": summary(idle), "while_training": summary(busy),
              "ratio_median": round(statistics.median(busy) / statistics.median(idle), 2),
              "job_status_during": still, "job_steps_during": steps, "busy_phase_s": round(t_busy, 1),
              "concurrent_users_while_training": classes, "per_user": args.per_user, "job": "minilm full, tweets, train_limit %d" % args.train_limit,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch_threads": torch.get_num_threads(),
              "load_average": [round(x, 1) for x in os.getloadavg()]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
