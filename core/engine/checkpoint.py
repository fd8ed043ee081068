"""Optimizer state as safetensors + JSON, so a checkpoint never needs pickle.

``torch.optim.Optimizer.state_dict()`` mixes tensors (moments) and Python scalars (step counts) per parameter;
tensors go to a safetensors file under ``"<param id>/<key>"`` and everything else to JSON, and
:func:`optimizer_from_safe` puts them back together. The run store (core.store.runs) writes both atomically.
"""
from __future__ import annotations

import torch


def optimizer_to_safe(optimizer: torch.optim.Optimizer) -> tuple[dict, dict[str, torch.Tensor]]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            name = f"{pid}/{key}"
            if torch.is_tensor(value):
                tensors[name] = value
            else:
                scalars[name] = value
    return {"param_groups": sd["param_groups"], "scalars": scalars}, tensors


def optimizer_from_safe(optimizer: torch.optim.Optimizer, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
