"""How long a run will take on this machine, before it starts, and what a sensible default run is here.

Two ingredients, both measured on the machine the app runs on:

- a **probe** (:func:`probe`): image models are built with random weights (timing does not depend on the
  weights), given a few random 32x32 images as fake splits, and run through the task's own code —
  ``prepare_training`` (the frozen-feature cache pass, with both flips), two training steps with the optimizer,
  and an evaluation — so the per-example seconds come from the very path a run takes. Text models are timed from
  their parameter count and a measured matmul speed (FLOPs), a rougher figure given a wider range.
- the **run's size**: examples per split after the limits and the validation fraction, and the cache pass of
  ``feature_extraction``/``last_block`` (each training image twice, flipped and not, plus validation and test),
  after which an epoch costs only the trainable part.

>>> est = estimate_run(TrainConfig(task="images", model="efficientnet_lite0", train_limit=1000, eval_limit=500,
...                                epochs=3))      # doctest: +SKIP
>>> est.text()                                     # doctest: +SKIP
'about 1 min (45 s – 1 min 30 s): caching 2,400 frozen features ≈ 55 s, then 3 epochs × 1 s, test < 1 s'
"""
from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass

from core import registry
from core.config import TrainConfig
from core.errors import TransferLabError

CONFIRM_MINUTES = 10.0  # a run estimated above this asks "Start anyway?" first
# The form's default run: on a CPU it ends in about a minute (measured: efficientnet_lite0 feature_extraction,
# 1000/500 examples, 3 epochs: 59 s of training on 2 cores, nearly all of it the cache pass of 2,400 images at
# ~41/s); a GPU does the same cache pass at thousands of images per second, so it gets more data and epochs.
CPU_DEFAULTS = {"epochs": 3, "train_limit": 1000, "eval_limit": 500}
GPU_DEFAULTS = {"epochs": 5, "train_limit": 20000, "eval_limit": 5000}
SETUP_SECONDS = 3.0  # loading the decoded data and starting the worker, besides building the model
PROBE_PARAMETERS = 80e6  # probe batch: about this many parameter-examples (16 images of a 5M model, 2 of a 40M)
MEASURED_RANGE, FLOPS_RANGE = (0.75, 1.5), (0.5, 2.5)  # low and high, as factors of the central estimate
# Activation checkpointing runs each layer's forward again in the backward pass: 4 passes where a step had 3
# (forward, and a backward of twice its cost). The qa-e5-small run on 2,000 questions took 1.4-1.5x (README).
RECOMPUTE_FACTOR = 4 / 3
TEXT_EFFICIENCY = 1.0  # measured matmul speed as is: padding and short real lengths make up for slower layers


def has_gpu() -> bool:
    """Whether torch sees a CUDA (or ROCm) GPU. On Linux without an NVIDIA or AMD GPU driver it cannot, and torch
    (seconds to import) is not loaded to find that out: the app's first page asks this for its defaults."""
    if sys.platform.startswith("linux") and not any(
            os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd")):
        return False
    import torch

    return torch.cuda.is_available()


def default_settings(gpu: bool | None = None) -> dict:
    """The form's default epochs and limits for this machine (CPU: a run of about a minute).

    >>> default_settings(gpu=False)
    {'epochs': 3, 'train_limit': 1000, 'eval_limit': 500}
    """
    return dict(GPU_DEFAULTS if (has_gpu() if gpu is None else gpu) else CPU_DEFAULTS)


@dataclass(frozen=True)
class Probe:
    """Measured seconds per example on this machine for one (model, strategy)."""

    cache: float  # through the frozen part, once per cached example (0 when the strategy caches nothing)
    train: float  # one training step (forward, backward, optimizer) on the path the run takes
    evaluate: float  # evaluating one example (the head on cached features, or the whole model)
    build: float  # seconds to build the model
    cached: bool  # the strategy's frozen part is cached before the first epoch
    source: str  # "measured" (a probe run) or "flops" (parameters x tokens / measured matmul speed)


@dataclass(frozen=True)
class Estimate:
    seconds: float
    low: float
    high: float
    cache_examples: int  # forwards through the frozen part before the first epoch (0: no cache pass)
    cache_seconds: float
    epoch_seconds: float  # one epoch: training plus validation
    epochs: int
    test_seconds: float
    source: str

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    def text(self) -> str:
        """'about 1 min (45 s – 1 min 30 s): caching 2,400 frozen features ≈ 55 s, then 3 epochs × 1 s, ...'"""
        parts = []
        if self.cache_examples:
            parts.append(f"caching {self.cache_examples:,} frozen features ≈ {duration(self.cache_seconds)}")
        parts.append(f"{'then ' if parts else ''}{self.epochs} epoch{'s' if self.epochs != 1 else ''} × "
                     f"{duration(self.epoch_seconds)}")
        parts.append(f"test {duration(self.test_seconds)}")
        how = "" if self.source == "measured" else " (rough: from the model's size, not a measured step)"
        return (f"about {duration(self.seconds, rounded=True)} ({duration(self.low)} – {duration(self.high)})"
                f"{how}: {', '.join(parts)}")


def duration(seconds: float, rounded: bool = False) -> str:
    """'< 1 s', '42 s', '3 min 5 s', '2 h 10 min'; ``rounded``: whole minutes from a minute on ('37 min').

    >>> duration(185), duration(185, rounded=True), duration(0.2)
    ('3 min 5 s', '3 min', '< 1 s')
    """
    if seconds < 1:
        return "< 1 s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if rounded and seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# -- probes -----------------------------------------------------------------------------------------------------
def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _fastest(fn, tries: int = 3, budget: float = 4.0) -> float:
    """The fastest of a few timed calls: the first pays one-time costs (kernels for the shape, allocations) and
    the CPU may be shared; a slow call is not repeated once ``budget`` seconds are spent."""
    best, spent = float("inf"), 0.0
    for _ in range(tries):
        seconds = _timed(fn)
        best, spent = min(best, seconds), spent + seconds
        if spent > budget:
            break
    return best


def _probe_images(cfg: TrainConfig, n: int) -> Probe:
    """Run the image task's own cache pass, training step and evaluation on ``n`` random images per split."""
    import torch

    from core.engine.fit import make_optimizer, make_task
    from core.freezing import set_train_mode, trainable_parameters
    from core.tasks.images.data import ImageSplit

    # The run's own weights choice: a packaged model may be built by other code than its random-weights twin.
    cfg = TrainConfig(**{**cfg.to_json(), "batch_size": n, "eval_batch_size": n})
    task = make_task(cfg)
    labels = list(task.task_spec.labels)
    g = torch.Generator().manual_seed(0)

    def split(size: int) -> ImageSplit:
        images = torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8, generator=g)
        return ImageSplit(images, torch.arange(size) % len(labels), tuple(labels), [str(i) for i in range(size)],
                          "probe")

    task.splits = {"train": split(2 * n), "val": split(n), "test": split(n)}
    build = _timed(lambda: task.build_model(labels))
    info = {}
    cache_s = _fastest(lambda: info.update(task.prepare_training()))
    cached = bool(info.get("feature_cache"))
    flips = 2 if cfg.hflip else 1
    optimizer = make_optimizer(cfg, trainable_parameters(task.model), 1e-3)
    set_train_mode(task.model, True)

    def step(batch) -> None:
        loss, _, _ = task.train_step(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    batch = task.train_batches(0)[0]
    train_s = _fastest(lambda: step(batch))
    eval_s = _fastest(lambda: task.logits_for("test"))
    cache_examples = 2 * n * flips + 2 * n  # the cached pass: train with its flips, val and test
    return Probe(cache=cache_s / cache_examples if cached else 0.0, train=train_s / n, evaluate=eval_s / n,
                 build=build, cached=cached, source="measured")


@functools.lru_cache(maxsize=1)
def matmul_flops_per_second() -> float:
    """This machine's float32 matmul speed (FLOP/s), from a few (512, 1024) x (1024, 1024) products."""
    import torch

    a, b = torch.randn(512, 1024), torch.randn(1024, 1024)
    a @ b  # warm-up
    reps = 5
    seconds = _timed(lambda: [a @ b for _ in range(reps)])
    return 2 * 512 * 1024 * 1024 * reps / max(seconds, 1e-9)


def _tokens(cfg: TrainConfig) -> int:
    """Tokens per example: the run's max_length, else the task's default (the adapter's ``max_length``)."""
    try:
        import torch

        return int(registry.get_task(cfg.task).adapter_class()(cfg, torch.device("cpu")).max_length)
    except (AttributeError, TransferLabError, TypeError):
        return cfg.max_length or 256


def _probe_text(cfg: TrainConfig) -> Probe:
    """Seconds per example from FLOPs: 2 x parameters x tokens forward, 3x that to train (forward and backward)."""
    trainable, frozen, total = _compute_parameters(cfg.model, cfg.strategy)
    per_flop = 1 / (matmul_flops_per_second() * TEXT_EFFICIENCY)
    tokens = _tokens(cfg)
    cached = cfg.feature_cache and cfg.strategy in ("feature_extraction", "last_block")
    forward_frozen = 2 * frozen * tokens * per_flop
    train = 6 * trainable * tokens * per_flop + (0 if cached else forward_frozen)
    evaluate = 2 * trainable * tokens * per_flop + (0 if cached else forward_frozen)
    return Probe(cache=forward_frozen if cached else 0.0, train=train, evaluate=evaluate,
                 build=2.0 + total / 50e6, cached=cached, source="flops")


def _compute_parameters(model: str, strategy: str) -> tuple[int, int, int]:
    """(trainable, frozen, total) parameters that cost FLOPs per token: embedding tables are looked up, not
    multiplied (e5-small's 96M of 118M), so they are left out. Built on the meta device, like parameter counts."""
    import torch

    from core.freezing import apply_strategy

    spec = registry.get(model)
    request = registry.BuildRequest(num_classes=registry.get_task(spec.task).num_outputs, weights="random")
    with torch.device("meta"):
        net = spec.build(spec, request)
    apply_strategy(net, strategy)
    embedded = {id(p) for m in net.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    params = [p for p in net.parameters() if id(p) not in embedded]
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    return trainable, total - trainable, total


@functools.lru_cache(maxsize=64)
def _probe_cached(model: str, strategy: str, n: int, hflip: bool, feature_cache: bool, head: str,
                  device: str) -> Probe:
    spec = registry.get(model)
    cfg = TrainConfig(task=spec.task, model=model, strategy=strategy, hflip=hflip, feature_cache=feature_cache,
                      head=head, device=device)
    if registry.get_task(spec.task).image_inputs:
        return _probe_images(cfg, n)
    return _probe_text(cfg)


def probe_size(model: str, strategy: str, batch: int) -> int:
    """Examples per probe batch: up to 16 (and the run's batch), fewer for a large model so a probe stays short."""
    total = registry.parameter_counts(model, strategy)["total"]
    return max(2, min(16, batch, int(PROBE_PARAMETERS / max(total, 1))))


def probe(cfg: TrainConfig) -> Probe:
    """Measured seconds per example for the run's (model, strategy, batch) on this machine; cached per process."""
    return _probe_cached(cfg.model, cfg.strategy, probe_size(cfg.model, cfg.strategy, cfg.batch_size), cfg.hflip,
                         cfg.feature_cache, cfg.head, cfg.device)


# -- the run's size ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _split_sizes(task: str, data_dir: str | None, data_file: str | None) -> tuple[int | None, int | None]:
    """(training source, test) examples of the task's data, or None where it cannot be read."""
    spec = registry.get_task(task)
    sizes = []
    for split in (spec.splits()[0], "test"):
        try:
            sizes.append(len(spec.load_examples(split, data_dir=data_dir, data_file=data_file)))
        except (TransferLabError, OSError):
            sizes.append(None)
    return sizes[0], sizes[1]


def _capped(limit: int | None, size: int | None) -> int:
    known = [x for x in (limit, size) if x is not None]
    return min(known) if known else 0


def split_counts(cfg: TrainConfig) -> dict[str, int]:
    """Examples a run trains, validates and tests on after its limits and validation fraction."""
    n_source, n_test = _split_sizes(cfg.task, cfg.data_dir, cfg.data_file)
    pool, test = _capped(cfg.train_limit, n_source), _capped(cfg.eval_limit, n_test)
    val = int(round(pool * cfg.val_fraction))
    return {"train": pool - val, "val": val, "test": test}


def estimate_run(cfg: TrainConfig, measured: Probe | None = None) -> Estimate:
    """Seconds the run will take here: setup, the frozen-feature cache pass, epochs, and the test pass."""
    p = measured or probe(cfg)
    n = split_counts(cfg)
    flips = 2 if cfg.hflip and registry.get_task(cfg.task).image_inputs else 1
    cache_examples = (n["train"] * flips + n["val"] + n["test"]) if p.cached else 0
    cache_s = cache_examples * p.cache
    train_s = p.train * (RECOMPUTE_FACTOR if cfg.activation_checkpointing else 1.0)
    epoch_s = n["train"] * train_s + n["val"] * p.evaluate
    test_s = n["test"] * p.evaluate
    total = SETUP_SECONDS + p.build + cache_s + cfg.epochs * epoch_s + test_s
    low, high = MEASURED_RANGE if p.source == "measured" else FLOPS_RANGE
    return Estimate(total, total * low, total * high, cache_examples, cache_s, epoch_s, cfg.epochs, test_s,
                    p.source)


def confirmation_reason(cfg: TrainConfig, est: Estimate | None) -> str | None:
    """A sentence when a run should be confirmed before it starts (long here, or an untrained model), else None.

    A model without pretrained weights on this machine learns little unless the strategy trains it from scratch.
    """
    from core.weights import weights_status

    reasons = []
    if est is not None and est.minutes > CONFIRM_MINUTES:
        reasons.append(f"this run is estimated at {duration(est.seconds, rounded=True)} on this machine (over "
                       f"{CONFIRM_MINUTES:g} min)")
    spec = registry.get(cfg.model)
    if weights_status(spec) == "untrained" and cfg.strategy != "scratch":
        reasons.append(f"the model {cfg.model} has no pretrained weights here (untrained: random weights), so freezing or "
                       "fine-tuning it learns little")
    if not reasons:
        return None
    text = " and ".join(reasons)
    return f"{text[0].upper()}{text[1:]}; press Start anyway to run it, or change the settings."
