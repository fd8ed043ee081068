"""Cold start of the app: seconds from ``python app.py`` to the first page and to each tab's first answer.

    .venv/bin/python bench/bench_cold_start.py [--timeout 600] [--importtime-top 15] [--skip-importtime]
                                               [--no-warmup] [--ask-after SECONDS]

Starts ``python app.py`` in a subprocess on a free port (a throw-away run store, ``TRANSFER_LAB_AUTO_RESUME=0``,
offline), polls ``GET /`` until it answers 200 (the first page), then asks each tab once through
``gradio_client`` with the tab's default registry model, in this order: QA (``/qa_answer``, the first
passage and question of assets/qa_examples.json, ``model:e5_small``), tweets (``/tweet_classify``, the first
tweet of assets/tweet_examples.json, ``model:minilm``) and images (``/image_classify``, a 32x32 PNG written here,
``model:efficientnet_lite0``). Each first answer includes that model's first load (weights, tokenizer); the
second answer of the same request is timed too, so the load's share is visible. The app's launch warm-up
(demo/warmup.py: each tab's default model loaded in the background once the server is up) is on, as users get it;
``--no-warmup`` sets ``TRANSFER_LAB_WARMUP=0``, so each first answer pays its whole load. ``--ask-after S`` waits
S seconds after the first page before the first question (a teacher who opens the page, then types), which is
where the warm-up shows.

Then ``python -X importtime -c "import demo"`` (a fresh process) gives the modules whose import costs the most
(cumulative microseconds, top ``--importtime-top``), and one more fresh process splits the first page in two:
``import demo`` and ``build_app()``, each with the heavy packages (torch, transformers, timm, ...) loaded by its end,
so a regression says where it came from. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_page(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until GET url answers 200 (raises when the app exits or the timeout passes)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with status {proc.returncode} before serving its first page")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"no first page within {timeout:g} s")


def png_bytes_file(folder: Path) -> Path:
    """A 32x32 RGB PNG (a colour gradient): the images tab decodes and resizes it like any upload."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:32, 0:32]
    arr = np.stack([x * 8, y * 8, (x + y) * 4], axis=-1).astype(np.uint8)
    path = folder / "cold_start.png"
    Image.fromarray(arr).save(path)
    return path


def padded(client, api_name: str, args: list) -> list:
    """``args`` followed by None for the endpoint's remaining inputs (the unused model pickers)."""
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]
    return list(args) + [None] * (len(info["parameters"]) - len(args))


def tab_requests(tmp: Path) -> list[tuple[str, str, list]]:
    from gradio_client import handle_file

    qa = json.loads((ROOT / "assets/qa_examples.json").read_text(encoding="utf-8"))["passages"][0]
    question = qa["questions"][0]["question"] if isinstance(qa["questions"][0], dict) else qa["questions"][0]
    tweet = json.loads((ROOT / "assets/tweet_examples.json").read_text(encoding="utf-8"))["tweets"][0]["text"]
    return [("qa", "/qa_answer", [qa["passage"], question, "model:e5_small"]),
            ("tweets", "/tweet_classify", [tweet, "model:minilm"]),
            ("images", "/image_classify", [handle_file(str(png_bytes_file(tmp))), "model:efficientnet_lite0"])]


def import_costs(top: int) -> dict:
    """Top modules of ``python -X importtime -c "import demo"`` by cumulative time, and the total."""
    t0 = time.perf_counter()
    out = subprocess.run([PYTHON, "-X", "importtime", "-c", "import demo"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "TRANSFER_LAB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.removeprefix("import time:").split("|")
        if parts[0].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))  # the name keeps its indentation: 1 space = top level
    # Modules imported at the top level (not by another module), where their cumulative time says the most.
    top_level = sorted(((us, name.strip()) for us, name in rows if len(name) - len(name.lstrip()) == 1),
                       reverse=True)
    return {"import_demo_wall_seconds": round(wall, 2),
            "top_level_ms": {name: round(us / 1000) for us, name in top_level[:top]},
            "heaviest_any_ms": {name.strip(): round(us / 1000) for us, name in sorted(rows, reverse=True)[:top]}}


HEAVY = ("torch", "transformers", "timm", "torchvision", "captum", "sklearn", "scipy", "datasets", "safetensors")

_BUILD_PROBE = """
import json, sys, time
heavy = HEAVY
loaded = lambda: [m for m in heavy if m in sys.modules]
t0 = time.perf_counter()
import demo
t1 = time.perf_counter()
after_import = loaded()
demo.build_app()
t2 = time.perf_counter()
print(json.dumps({"import_demo_seconds": round(t1 - t0, 2), "heavy_after_import": after_import,
                  "build_app_seconds": round(t2 - t1, 2), "heavy_after_build": loaded()}))
"""


def build_costs(env: dict) -> dict:
    """Seconds of ``import demo`` and of ``build_app()`` in a fresh process, and the heavy packages loaded by the
    end of each (a background thread of the app may add some while the page is built)."""
    code = _BUILD_PROBE.replace("HEAVY", repr(HEAVY))
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or [f"exit status {out.returncode}"]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--importtime-top", type=int, default=15)
    p.add_argument("--skip-importtime", action="store_true")
    p.add_argument("--ask-after", type=float, default=0.0, help="seconds between the first page and the first question")
    p.add_argument("--no-warmup", action="store_true", help="TRANSFER_LAB_WARMUP=0: every first answer pays its load")
    args = p.parse_args()
    from gradio_client import Client

    out: dict = {"load_average_1min_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "TRANSFER_LAB_AUTO_RESUME": "0",
               "TRANSFER_LAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFER_LAB_RUNS": str(tmp / "runs"),
               "GRADIO_ANALYTICS_ENABLED": "False", "TRANSFER_LAB_WARMUP": "0" if args.no_warmup else "1"}
        out["warmup"] = not args.no_warmup
        requests = tab_requests(tmp)
        t0 = time.perf_counter()
        proc = subprocess.Popen([PYTHON, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=open(tmp / "app.log", "w"))
        try:
            url = f"http://127.0.0.1:{port}/"
            out["first_page_seconds"] = round(wait_for_page(url, proc, args.timeout), 2)
            client = Client(url, verbose=False, httpx_kwargs={"timeout": args.timeout})  # a loaded machine is slow
            out["client_connected_seconds"] = round(time.perf_counter() - t0, 2)
            time.sleep(max(0.0, args.ask_after))
            out["asked_after_page_seconds"] = args.ask_after
            for tab, api, inputs in requests:
                t1 = time.perf_counter()
                result = client.predict(*padded(client, api, inputs), api_name=api)
                first = time.perf_counter() - t1
                t2 = time.perf_counter()
                client.predict(*padded(client, api, inputs), api_name=api)
                again = time.perf_counter() - t2
                status = result[0] if isinstance(result, (list, tuple)) else result
                out[tab] = {"first_answer_seconds": round(first, 2), "second_answer_seconds": round(again, 2),
                            "since_launch_seconds": round(time.perf_counter() - t0 - again, 2),
                            "error": str(status)[:120] or None}  # the tab's status line: empty when it answered
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if (tmp / "runs").exists():
            out["runs_env_honoured"] = True
        if not args.skip_importtime:
            out["first_page_parts"] = build_costs({**env, "TRANSFER_LAB_RUNS": str(tmp / "runs_build")})
    if not args.skip_importtime:
        out["importtime"] = import_costs(args.importtime_top)
    out["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
