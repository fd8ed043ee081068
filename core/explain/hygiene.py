"""Context managers that change a model for an explanation and put everything back, also when the forward raises.

:func:`explaining` is the one every method enters: it records each module's ``training`` flag, each parameter's
``requires_grad``, timm's ``fused_attn`` switches, transformers' attention implementation and every ``inplace``
flag, and the hooks on every module; on exit it restores the flags and removes any hook added inside (captum's
included, should one survive an exception). The only hooks it leaves are transformers' own output-capturing hooks,
which transformers installs once per model on its first forward and needs afterwards.

The narrower managers switch one thing inside it: :func:`eager_attention` (transformers' sdpa attention returns no
attention maps), :func:`unfused_timm_attention` (timm's fused attention computes no probabilities to capture),
:func:`no_inplace` (Grad-CAM reads activations that an in-place ReLU would overwrite), :func:`forward_hooks`.

>>> with explaining(model):            # doctest: +SKIP
...     with eager_attention(model):
...         out = model.encoder(**enc, output_attentions=True)
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from torch import nn

_TRANSFORMERS_HOOK_MODULE = "transformers.utils.output_capturing"
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_HOOK_SIDE_DICTS = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")


def _pretrained_models(model: nn.Module) -> list[nn.Module]:
    """The transformers PreTrainedModels inside ``model`` (empty when transformers is not involved)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return []
    return [m for m in model.modules() if isinstance(m, PreTrainedModel)]


def attention_implementations(model: nn.Module) -> dict[str, str]:
    """``{module name: attention implementation}`` of each transformers model inside ``model``."""
    names = {m: n for n, m in model.named_modules()}
    return {names[m]: m.config._attn_implementation for m in _pretrained_models(model)}


def fused_attention_flags(model: nn.Module) -> dict[str, bool]:
    """``{module name: fused_attn}`` of each timm attention module inside ``model``."""
    return {n: m.fused_attn for n, m in model.named_modules() if isinstance(getattr(m, "fused_attn", None), bool)}


def hook_counts(model: nn.Module) -> dict[str, int]:
    """``{module name: number of forward/backward (pre-)hooks}``, for modules that have any."""
    counts = {n: sum(len(getattr(m, d, {})) for d in _HOOK_DICTS) for n, m in model.named_modules()}
    return {n: c for n, c in counts.items() if c}


def _is_transformers_hook(fn) -> bool:
    return getattr(fn, "__module__", "") == _TRANSFORMERS_HOOK_MODULE


@contextmanager
def explaining(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for an explanation; restore every flag and remove every new hook afterwards."""
    modules = list(model.modules())
    training = {m: m.training for m in modules}
    requires_grad = {p: p.requires_grad for p in model.parameters()}
    fused = {m: m.fused_attn for m in modules if isinstance(getattr(m, "fused_attn", None), bool)}
    inplace = {m: m.inplace for m in modules if isinstance(getattr(m, "inplace", None), bool)}
    attn = {m: m.config._attn_implementation for m in _pretrained_models(model)}
    hooks = {m: {d: set(getattr(m, d, {})) for d in _HOOK_DICTS} for m in modules}
    try:
        model.eval()  # dropout off, BatchNorm on its running statistics
        yield model
    finally:
        for m, flag in training.items():
            m.training = flag
        for p, flag in requires_grad.items():
            p.requires_grad_(flag)
        for m, flag in fused.items():
            m.fused_attn = flag
        for m, flag in inplace.items():
            m.inplace = flag
        for m, impl in attn.items():
            if m.config._attn_implementation != impl:
                m.set_attn_implementation(impl)
        for m in modules:
            for d, before in hooks[m].items():
                table = getattr(m, d, None)
                if not table:
                    continue
                for key in [k for k in table if k not in before and not _is_transformers_hook(table[k])]:
                    del table[key]
                    for side in _HOOK_SIDE_DICTS:
                        getattr(m, side, {}).pop(key, None)


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Every transformers model inside ``model`` on the eager attention path (which returns attention maps)."""
    top = [m for m in _pretrained_models(model)]
    before = {m: m.config._attn_implementation for m in top}
    try:
        for m in top:
            if before[m] != "eager":
                m.set_attn_implementation("eager")
        yield
    finally:
        for m, impl in before.items():
            if m.config._attn_implementation != impl:
                m.set_attn_implementation(impl)


@contextmanager
def unfused_timm_attention(model: nn.Module) -> Iterator[None]:
    """timm attention modules on their unfused path, where the softmax probabilities pass through ``attn_drop``."""
    flags = {m: m.fused_attn for m in model.modules() if isinstance(getattr(m, "fused_attn", None), bool)}
    try:
        for m in flags:
            m.fused_attn = False
        yield
    finally:
        for m, flag in flags.items():
            m.fused_attn = flag


@contextmanager
def no_inplace(model: nn.Module) -> Iterator[None]:
    """Every ``inplace`` flag (ReLU, SiLU, BatchNormAct's activations) off, so no activation is overwritten."""
    flags = {m: m.inplace for m in model.modules() if isinstance(getattr(m, "inplace", None), bool)}
    try:
        for m in flags:
            m.inplace = False
        yield
    finally:
        for m, flag in flags.items():
            m.inplace = flag


@contextmanager
def forward_hooks(pairs: Iterable[tuple[nn.Module, Callable]]) -> Iterator[None]:
    """Forward hooks ``hook(module, args, output)`` on modules, removed on exit."""
    handles = []
    try:
        for module, hook in pairs:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()
