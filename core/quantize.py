"""int8 dynamic quantisation of the text models' prediction path (CPU only), an opt-in speed-up.

``quantize_task(task)`` replaces every ``nn.Linear`` of a tweet or QA model (the encoder's projections and MLPs,
which hold nearly all of its FLOPs, and the head) by PyTorch's dynamically quantised linear layer: weights stored
as int8 once, activations quantised per batch on the fly, matmuls in int8 (oneDNN/fbgemm on x86). Embeddings and
LayerNorms stay float32. Predictions differ from fp32 by rounding only; bench/bench_int8.py measures the speed-up
and how often the answers agree. The quantised model is for prediction: it has no gradients, so it is never
trained, resumed or explained with gradient methods.

It is refused, with one sentence, where it does not apply: image models (convolutions, which dynamic
quantisation does not cover), a model on a GPU, or a PyTorch build without a quantised CPU engine.

>>> task = quantize_task(task)            # doctest: +SKIP
>>> task.predict_text("Wash your hands")  # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from core.errors import BadSettingError

if TYPE_CHECKING:  # torch is imported where a model is quantised: importing this module stays light
    import torch
    from torch import nn

TEXT_TASKS = ("tweets", "qa")


def why_not(task_name: str, device: torch.device | str = "cpu") -> str | None:
    """The sentence that says why int8 does not apply to a task on a device, or None when it applies."""
    if task_name not in TEXT_TASKS:
        return (f"int8 quantisation applies to the text models (tweets, QA), not to the {task_name} task's "
                "models, whose work is in convolutions and attention blocks it does not cover.")
    import torch

    if torch.device(device).type != "cpu":
        return "int8 dynamic quantisation runs on the CPU only; this model is on a GPU, where bf16 is the faster path."
    if not torch.backends.quantized.supported_engines or torch.backends.quantized.engine == "none":
        return "This PyTorch build has no quantised CPU engine, so int8 prediction is not available here."
    return None


def quantize_model(model: nn.Module) -> nn.Module:
    """``model`` with every nn.Linear dynamically quantised to int8 (in place; returns it, in eval mode)."""
    import torch
    from torch import nn

    model.eval()
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it will move to torchao; it is still PyTorch's supported eager path.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*")
        torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    model.transfer_lab_int8 = True
    return model


def is_quantized(model: nn.Module) -> bool:
    return bool(getattr(model, "transfer_lab_int8", False))


def quantize_task(task):
    """Quantise a loaded text TaskRun's model for prediction (in place); BadSettingError where it does not apply."""
    reason = why_not(task.task, task.device)
    if reason is not None:
        raise BadSettingError(reason)
    if task.model is None:
        raise BadSettingError("Build or load the model before quantising it.")
    from torch import nn

    if not any(isinstance(m, nn.Linear) for m in task.model.modules()):
        raise BadSettingError("This model has no linear layers to quantise.")
    quantize_model(task.model)
    return task


def model_bytes(model: nn.Module) -> int:
    """Bytes of a model's weights, counting a quantised linear layer's int8 weight and float bias (which are
    packed, not parameters) as well as the remaining float parameters."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    for m in model.modules():
        packed = getattr(m, "_packed_params", None)
        if packed is not None and hasattr(m, "weight") and callable(m.weight):
            w, b = m.weight(), m.bias()
            total += w.numel() * w.element_size() + (b.numel() * b.element_size() if b is not None else 0)
    return total
