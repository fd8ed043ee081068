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

Then a class: for each ``--users`` count, that many simulated users at once (on loopback, each over Gradio's
plain HTTP API ``/gradio_api/call/tweet_classify``: submit, then read the event stream; one keep-alive httpx
connection per user, as a browser keeps one), each sending ``--per-user`` requests one after the other while the
job trains; p50/p95 over all of them, requests/s, the training steps the job made during the phase (steps/s against
a ``--quiet-s`` window with no requests) and how often the job's batch loop waited for requests
(core/engine/interactive.py). Request counts are bounded, so the bench stops by itself.

``--clients process`` (the default) runs the simulated users in a second Python process, as a class's browsers are
not in the server's process: on two cores they still take CPU, but not the server's GIL. ``--clients threads``
runs them as threads of the server's process (the figures before 2026-12-02 evening). Each phase reports the CPU
the users themselves used per request (``client_cpu_ms_per_request``).

``--no-train`` runs the same class phases with no fine-tune: the floor that Gradio's queue, HTTP and the forward
passes cost alone.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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


def http_classify(http, url: str, model: str, text: str) -> float:
    """Latency (ms) of one /tweet_classify call over Gradio's HTTP API (submit, then read the result stream),
    on the httpx client ``http`` (one per user: its connection is kept alive between requests)."""
    t0 = time.perf_counter()
    r = http.post(f"{url}/gradio_api/call/tweet_classify", json={"data": [text, model, None, None]})
    r.raise_for_status()
    body = http.get(f"{url}/gradio_api/call/tweet_classify/{r.json()['event_id']}").text
    if "event: complete" not in body:
        raise SystemExit(f"/tweet_classify failed: {body[:300]}")
    return (time.perf_counter() - t0) * 1000


def classroom(url: str, model: str, users: int, per_user: int) -> tuple[list[float], float]:
    """(latencies of ``users`` concurrent users, each sending ``per_user`` requests in a row; the CPU seconds
    the users' threads used, client setup included)."""
    import httpx
    from concurrent.futures import ThreadPoolExecutor

    start = threading.Barrier(users)

    def one_user(u: int) -> tuple[list[float], float]:
        cpu = time.thread_time()
        with httpx.Client(timeout=300) as http:
            start.wait(timeout=300)  # every user is ready before the first request: a class starts at once
            cpu -= time.thread_time()  # the client's construction is not part of a request's cost
            ms = [http_classify(http, url, model, TWEETS[(u + i) % len(TWEETS)]) for i in range(per_user)]
            cpu += time.thread_time()
        return ms, cpu

    with ThreadPoolExecutor(max_workers=users) as pool:
        done = list(pool.map(one_user, range(users)))
    return [ms for user, _ in done for ms in user], sum(cpu for _, cpu in done)


def classroom_in_process(url: str, model: str, users: int, per_user: int) -> tuple[list[float], float]:
    """classroom() run by a second Python process (this script with ``--class-of``): the users off the server's
    GIL."""
    out = subprocess.run([sys.executable, __file__, "--class-of", url, "--model", model, "--users", str(users),
                          "--per-user", str(per_user)], capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise SystemExit(f"the users' process failed: {out.stderr.strip()[-500:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["ms"], got["cpu_s"]


def train_steps(jobs, job_id: str) -> int | None:
    """The job's global training step now (None outside the training phase)."""
    progress = jobs().snapshot(job_id).get("progress") or {}
    return progress.get("global_step") if progress.get("phase") == "train" else None


def class_phase(run_users, url: str, model: str, users: int, per_user: int, jobs=None, job_id=None) -> dict:
    """One class phase: latency summary, requests/s, the users' own CPU per request, and (with a job) its training
    steps during the phase and the batches its loop held back for requests."""
    from core.engine.interactive import GATE

    step0 = train_steps(jobs, job_id) if job_id else None
    waits0, waited0 = GATE.waits, GATE.waited_s
    t0 = time.perf_counter()
    ms, cpu_s = run_users(url, model, users, per_user)
    wall = time.perf_counter() - t0
    out = {**summary(ms), "wall_s": round(wall, 1), "requests_per_s": round(len(ms) / wall, 1),
           "client_cpu_ms_per_request": round(cpu_s / len(ms) * 1000, 1),
           "load_average": [round(x, 1) for x in os.getloadavg()]}
    if job_id:
        step1 = train_steps(jobs, job_id)
        steps = step1 - step0 if step0 is not None and step1 is not None else None
        out.update(train_steps=steps, train_steps_per_s=round(steps / wall, 2) if steps is not None else None,
                   job_phase_after=(jobs().snapshot(job_id).get("progress") or {}).get("phase"),
                   batches_held=GATE.waits - waits0, held_s=round(GATE.waited_s - waited0, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="model:minilm", help="the tweet model session 2 asks (a picker value)")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--train-limit", type=int, default=1000)
    ap.add_argument("--users", default="20,60", help="concurrent users per class phase, comma-separated")
    ap.add_argument("--per-user", type=int, default=3, help="requests each simulated user sends")
    ap.add_argument("--clients", choices=("process", "threads"), default="process",
                    help="where the simulated users run: a second process (default) or threads of the server's")
    ap.add_argument("--no-train", action="store_true", help="the class phases with no fine-tune running (the floor)")
    ap.add_argument("--quiet-s", type=float, default=10.0,
                    help="seconds of training with no requests, for the job's own steps/s")
    ap.add_argument("--class-of", metavar="URL", help=argparse.SUPPRESS)  # the users' process (--clients process)
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    users_list = [int(u) for u in args.users.split(",") if u.strip()]
    if args.class_of:
        ms, cpu_s = classroom(args.class_of.rstrip("/"), args.model, users_list[0], args.per_user)
        print(json.dumps({"ms": ms, "cpu_s": cpu_s}))
        return
    os.environ.setdefault("TRANSFER_LAB_RUNS", tempfile.mkdtemp(prefix="transfer_lab_bench_runs_"))
    if args.data_dir:
        os.environ["TRANSFER_LAB_DATA"] = args.data_dir

    import torch
    from gradio_client import Client

    from demo import build_app
    from demo.app import launch_kwargs
    from demo.state import jobs

    run_users = classroom_in_process if args.clients == "process" else classroom
    app = build_app()
    app.queue().launch(**launch_kwargs(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                                       quiet=True))
    url = app.local_url.rstrip("/")
    result = {"bench": "app_latency", "model": args.model, "clients": args.clients, "per_user": args.per_user}
    try:
        trainer, asker = Client(app.local_url, verbose=False), Client(app.local_url, verbose=False)
        timed(asker, args.model, 2)  # warm-up: loads the model into the shared predictor cache
        idle = timed(asker, args.model, args.requests)
        result["idle"] = summary(idle)
        if args.no_train:
            result["concurrent_users_no_training"] = {
                str(users): class_phase(run_users, url, args.model, users, args.per_user) for users in users_list}
        else:
            job_id, status = trainer.predict(None, "tweets", "minilm", "full", 1, "", 16, args.train_limit, 200, 0,
                                             "(none)", api_name="/start_training")
            if job_id is None:
                raise SystemExit(f"/start_training said: {status}")
            deadline = time.time() + 600
            while train_steps(jobs, job_id) is None:  # past data loading
                snap = jobs().snapshot(job_id)
                if time.time() > deadline or snap["status"] in ("failed", "completed", "cancelled"):
                    raise SystemExit(f"the job did not start training: {snap['status']} {snap['message']}")
                time.sleep(1)
            step0, t0 = train_steps(jobs, job_id), time.perf_counter()
            time.sleep(args.quiet_s)  # the job alone: its steps/s with no requests
            step1, quiet = train_steps(jobs, job_id), time.perf_counter() - t0
            result["train_steps_per_s_quiet"] = round((step1 - step0) / quiet, 2) if step1 is not None else None
            before = step1
            t_busy = time.perf_counter()
            busy = timed(asker, args.model, args.requests)
            t_busy = time.perf_counter() - t_busy
            after = train_steps(jobs, job_id)
            result.update(while_training=summary(busy),
                          ratio_median=round(statistics.median(busy) / statistics.median(idle), 2),
                          job_steps_during=after - before if after is not None and before is not None else None,
                          busy_phase_s=round(t_busy, 1))
            result["concurrent_users_while_training"] = {
                str(users): class_phase(run_users, url, args.model, users, args.per_user, jobs, job_id)
                for users in users_list}
            snap = jobs().snapshot(job_id)
            result["job_status_after"] = f"{snap['status']}, phase {(snap.get('progress') or {}).get('phase')}"
            result["job"] = "minilm full, tweets, train_limit %d" % args.train_limit
            jobs().cancel(job_id)
            jobs().wait(job_id, timeout=300)  # let the worker checkpoint and stop before the process exits
    finally:
        app.close()
    result.update(machine=f"{platform.machine()}, {os.cpu_count()} cores", torch_threads=torch.get_num_threads(),
                  load_average=[round(x, 1) for x in os.getloadavg()])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
