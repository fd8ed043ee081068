"""TrainConfig: every setting of a run, validated in one place, saved in the run's config.json."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from core.errors import BadSettingError
from core import registry
from core.weights import WEIGHT_CHOICES

# The allowed values of each fixed-choice setting: the one place TrainConfig.validate and the CLI's flags read them
# from (task and strategy come from the registry instead).
CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("adam", "adamw", "sgd"),
    "scheduler": ("plateau", "step", "none"),
    "weights": WEIGHT_CHOICES,
    "head": ("paper", "paper_1024", "linear"),
    "normalize": ("backbone", "cifar10", "half"),
    "precision": ("auto", "fp32", "bf16"),
    "device": ("auto", "cpu", "cuda"),
}


MAX_EPOCHS = 100_000
MAX_BATCH = 4096
MAX_DEVICES = 1024  # processes per machine for data-parallel training
MIN_LENGTH, MAX_LENGTH = 8, 4096  # tokens per example: below 8 nothing fits, above 4096 no model here reaches
MAX_NAME = 60  # characters of a run's friendly name: it must fit a picker label and a table cell


def _whole(value) -> bool:
    """An int that is not a bool (True would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def clean_run_name(value) -> str | None:
    """A run's friendly name as stored: stripped, None when blank; one sentence for anything that is not a short
    single line of printable text. The one check for a name, at start (TrainConfig.validate) and on a rename.

    >>> clean_run_name("  my first run ")
    'my first run'
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadSettingError(f"The run name must be text; got {type(value).__name__}.")
    name = value.strip()
    if not name:
        return None
    if not name.isprintable():  # newlines, tabs and control characters would break labels and table rows
        raise BadSettingError("The run name must be a single line of printable characters.")
    if len(name) > MAX_NAME:
        raise BadSettingError(f"The run name must be at most {MAX_NAME} characters; got {len(name)}.")
    return name


def _one_of(values: tuple[str, ...]) -> str:
    """("a", "b", "c") -> "a, b or c"."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


@dataclass
class TrainConfig:
    task: str
    model: str
    strategy: str = "feature_extraction"
    epochs: int = 5
    lr: float | None = None  # None: the default for the model and strategy (see resolved_lr)
    batch_size: int = 64  # examples per optimizer step: the global batch, shared by every process when devices > 1
    micro_batch: int = 0  # split each step's batch into chunks of at most this many examples; 0: the whole batch
    activation_checkpointing: bool = False  # recompute each encoder layer in the backward pass: less memory (QA)
    eval_batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only: Nesterov momentum
    weight_decay: float = 0.0
    scheduler: str = "plateau"  # plateau (on the validation monitor) | step | none
    plateau_factor: float = 0.6
    plateau_patience: int = 2
    min_lr: float = 1e-7
    step_size: int = 1
    step_gamma: float = 0.1
    train_limit: int | None = None
    eval_limit: int | None = None
    val_fraction: float = 0.1  # held out of the training split for per-epoch validation
    data_dir: str | None = None
    data_file: str | None = None  # a user file instead of the built-in data (QA JSON, tweet CSV)
    seed: int = 0
    max_minutes: float | None = None  # time budget: stop cleanly at a checkpoint, resumable
    checkpoint_every: int = 1  # epochs between checkpoints (a stop or cancel always checkpoints)
    checkpoint_minutes: float = 3.0  # also checkpoint within an epoch this often, so a crash loses at most this
    feature_cache: bool = True  # cache the frozen part's outputs (feature_extraction, last_block)
    cache_max_gb: float = 4.0  # larger caches fall back to the uncached path
    hflip: bool = True  # images: random horizontal flips while training
    weights: str = "auto"  # auto | hub | offline | random
    head: str = "paper"  # images: paper (the course's head, 256 units) | paper_1024 (the same, 1024 units) | linear
    normalize: str = "backbone"  # images: backbone (its ImageNet mean/std) | cifar10 (CIFAR-10 mean/std) | half (0.5/0.5)
    log_every: int = 0  # steps between points of the per-step training loss history; 0: about 50 points per epoch
    precision: str = "auto"  # auto (bf16 autocast where the device supports it and it pays) | fp32 | bf16
    device: str = "auto"  # auto | cpu | cuda
    devices: int = 1  # data-parallel processes on this machine (torch.distributed, one GPU each on CUDA)
    max_length: int | None = None  # text tasks: tokens per example (window size for QA)
    doc_stride: int = 128  # QA: overlap between windows
    preset: str | None = None
    name: str | None = None  # a friendly name for the run (at most MAX_NAME characters); None: none

    def validate(self) -> "TrainConfig":
        """Raise a one-sentence error for any setting a run cannot use (the run name is stored stripped)."""
        self.name = clean_run_name(self.name)
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise BadSettingError(f"The learning rate must be a positive number; got {self.lr}.")
        for name, most in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH), ("eval_batch_size", MAX_BATCH),
                           ("checkpoint_every", MAX_EPOCHS)):
            value = getattr(self, name)
            if not _whole(value) or not 1 <= value <= most:
                raise BadSettingError(f"{name.replace('_', ' ').capitalize()} must be a whole number from 1 to "
                                      f"{most:,}; got {value}.")
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and (not _whole(value) or value < 1):
                raise BadSettingError(f"The {name.replace('_', ' ')} must be a positive number of examples; "
                                      f"got {value}.")
        if not _whole(self.micro_batch) or not 0 <= self.micro_batch <= MAX_BATCH:
            raise BadSettingError(f"Micro batch must be a whole number of examples from 0 (the whole batch) to "
                                  f"{MAX_BATCH:,}; got {self.micro_batch}.")
        if not _whole(self.log_every) or self.log_every < 0:
            raise BadSettingError(f"Log every must be a whole number of steps of at least 0; got {self.log_every}.")
        if not isinstance(self.nesterov, bool):
            raise BadSettingError(f"Nesterov must be true or false; got {self.nesterov}.")
        if not isinstance(self.activation_checkpointing, bool):
            raise BadSettingError(f"Activation checkpointing must be true or false; got "
                                  f"{self.activation_checkpointing}.")
        if not (isinstance(self.momentum, (int, float)) and math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise BadSettingError(f"Momentum must be at least 0 and below 1; got {self.momentum}.")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise BadSettingError("Nesterov momentum needs the sgd optimizer and a momentum above 0.")
        if not _whole(self.seed) or self.seed < 0:
            raise BadSettingError(f"The seed must be a whole number of at least 0; got {self.seed}.")
        if self.max_length is not None and (not _whole(self.max_length) or
                                            not MIN_LENGTH <= self.max_length <= MAX_LENGTH):
            raise BadSettingError(f"The max length must be a whole number of tokens from {MIN_LENGTH} to "
                                  f"{MAX_LENGTH:,}; got {self.max_length}.")
        if not _whole(self.doc_stride) or self.doc_stride < 1:
            raise BadSettingError(f"The doc stride must be a whole number of tokens of at least 1; got "
                                  f"{self.doc_stride}.")
        windowed = registry.get_task(self.task).windows
        if windowed and self.max_length is not None and self.doc_stride >= self.max_length:
            raise BadSettingError(f"The doc stride ({self.doc_stride}) must be smaller than the max length "
                                  f"({self.max_length}): windows overlap by the stride.")
        if not (isinstance(self.checkpoint_minutes, (int, float)) and not isinstance(self.checkpoint_minutes, bool)
                and math.isfinite(self.checkpoint_minutes) and self.checkpoint_minutes > 0):
            raise BadSettingError(f"Checkpoint minutes must be a positive number of minutes; got "
                                  f"{self.checkpoint_minutes}.")
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise BadSettingError(f"The validation fraction must be at least 0 and below 1; got {self.val_fraction}.")
        if self.max_minutes is not None and not (isinstance(self.max_minutes, (int, float)) and
                                                 math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise BadSettingError(f"The time budget must be a positive number of minutes; got {self.max_minutes}.")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise BadSettingError(f"Unknown {name} '{getattr(self, name)}'; use {_one_of(allowed)}.")
        self._check_devices()
        for name in ("weight_decay", "plateau_factor", "step_gamma", "min_lr", "cache_max_gb"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise BadSettingError(f"{name.replace('_', ' ').capitalize()} must be a finite number >= 0; "
                                      f"got {value}.")
        registry.check(self.task, self.model, self.strategy)  # task, model and strategy fit together
        return self

    def _check_devices(self) -> None:
        """devices: a whole number; with several, the global batch must give each process an example, and on a
        GPU each process needs a GPU of its own."""
        if not _whole(self.devices) or not 1 <= self.devices <= MAX_DEVICES:
            raise BadSettingError(f"Devices must be a whole number from 1 to {MAX_DEVICES:,}; got {self.devices}.")
        if self.devices == 1:
            return
        if _whole(self.batch_size) and self.batch_size < self.devices:
            raise BadSettingError(f"The batch size ({self.batch_size}) is the global batch shared by the "
                                  f"{self.devices} devices, so it must be at least {self.devices}.")
        if self.device == "cpu":
            return
        import torch  # heavy; only for a multi-device run

        if self.device == "cuda" or torch.cuda.is_available():
            gpus = torch.cuda.device_count()
            if gpus < self.devices:
                raise BadSettingError(f"Training on {self.devices} devices needs {self.devices} GPUs; this machine "
                                      f"has {gpus}.")

    def resolved_lr(self, default_lr: float) -> float:
        """The learning rate a run uses: the explicit one, else 1e-3 for a fresh head or a network trained from
        scratch, else the model's fine-tuning default."""
        if self.lr is not None:
            return float(self.lr)
        if self.strategy in ("feature_extraction", "scratch"):
            return max(default_lr, 1e-3)
        return default_lr

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
