"""R-Adapt's Fixed Robustness Anchor inside a transformers vision encoder, and the hooks the paper LVLMs share.

`defense.FixedAnchorAttention` replaces an open_clip block's nn.MultiheadAttention; transformers' attention
modules have other signatures and return values, so the same semantics (the first block's attention sub-layer
output h becomes alpha * A + beta * h, A fixed, tokens x width; with beta == 0 the original attention is not
evaluated) live here in `AnchoredAttention`, in the two layouts the paper's encoders use:

* batched (CLIP's `CLIPAttention`, LLaVA-1.5): hidden_states (N, T, D) -> `(output, attn_weights)`, a tuple;
* packed (Qwen3-VL's `Qwen3VLVisionAttention`): the tokens of all images in one (N * T, D) sequence -> a tensor.
"""
from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from ..defense import AnchorShapeError


class AnchoredAttention(nn.Module):
    """Drop-in for a transformers attention module: alpha * A + beta * inner(hidden_states, ...).

    `anchor` (tokens x width), `alpha` and `beta` are buffers (float32: R-Adapt+ optimises the anchor in full
    precision even when the encoder runs in half precision); `inner` is the original, frozen attention.
    """

    def __init__(self, inner: nn.Module, anchor: torch.Tensor, alpha: float, beta: float, *, packed: bool,
                 returns_tuple: bool):
        super().__init__()
        if anchor.ndim != 2:
            raise AnchorShapeError(f"the anchor must be a (tokens x width) matrix, got shape {tuple(anchor.shape)}")
        self.inner = inner
        self.packed = packed
        self.returns_tuple = returns_tuple
        device = next(itertools.chain(inner.parameters(), inner.buffers()), anchor).device
        self.register_buffer("anchor", anchor.detach().clone().float().to(device))
        self.register_buffer("alpha", torch.tensor([float(alpha)], device=device))
        self.register_buffer("beta", torch.tensor([float(beta)], device=device))

    def extra_repr(self) -> str:
        n, d = self.anchor.shape
        layout = "packed" if self.packed else "batched"
        return f"anchor={n}x{d}, alpha={float(self.alpha):.3g}, beta={float(self.beta):.3g}, {layout}"

    def _tiled(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """alpha * A in the layout of `hidden_states`, after checking that they agree in tokens and width."""
        tokens, width = self.anchor.shape
        if self.packed:
            rows = hidden_states.shape[0]
            ok = hidden_states.ndim == 2 and hidden_states.shape[1] == width and rows % tokens == 0
            seen = f"{rows} packed tokens x {hidden_states.shape[-1]} width"
        else:
            ok = tuple(hidden_states.shape[-2:]) == (tokens, width)
            seen = f"{hidden_states.shape[-2]} tokens x {hidden_states.shape[-1]} width"
        if not ok:
            raise AnchorShapeError(f"the anchor is {tokens} tokens x {width} width but the first encoder block sees "
                                   f"{seen}: take the anchor from the same model's white_anchor() (same architecture "
                                   "and image_size)")
        scaled = (self.alpha * self.anchor).to(hidden_states.dtype)
        if self.packed:  # all images share one size, so the packed sequence is N copies of the anchor's layout
            return scaled.repeat(hidden_states.shape[0] // tokens, 1)
        return scaled.expand_as(hidden_states)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any):
        out = self._tiled(hidden_states)
        if float(self.beta) != 0.0:  # beta == 0: the original attention's output would be multiplied by 0
            h = self.inner(hidden_states, *args, **kwargs)
            h = h[0] if self.returns_tuple else h
            out = out + (self.beta.to(h.dtype) * h)
        return (out, None) if self.returns_tuple else out


def unwrap(attention: nn.Module) -> nn.Module:
    """The original attention module, whether or not an anchor wraps it."""
    return attention.inner if isinstance(attention, AnchoredAttention) else attention


def check_anchor_shape(anchor: torch.Tensor, expected: tuple[int, int], model_name: str, image_size: int) -> None:
    if tuple(anchor.shape) != tuple(expected):
        raise AnchorShapeError(f"anchor is {' x '.join(map(str, anchor.shape))} but {model_name}'s first encoder block "
                               f"sees {expected[0]} tokens x {expected[1]} width at {image_size} px: take the anchor "
                               "from this model's white_anchor() (same architecture and image_size)")


def copy_sharing_weights(module: nn.Module, shared: Iterable[object] = ()) -> nn.Module:
    """A deep copy of `module` whose parameters and buffers are the original's tensors (not copies).

    A defended LVLM differs from the original only in the modules R-Adapt adds (filter, anchor); copying the
    7-8 B frozen weights would double the GPU memory for nothing. `shared` lists other objects (tokenizers,
    processors) that the copy may share as well.
    """
    memo: dict[int, object] = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    memo.update({id(obj): obj for obj in shared})
    return copy.deepcopy(module, memo)


class _Stop(Exception):
    """Raised by a capture hook once it has what it needs: the rest of the encoder never runs."""


def _hidden_states_of(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def capture_call(module: nn.Module, run: Callable[[], object]) -> tuple[tuple, dict]:
    """The (args, kwargs) `module` is called with when `run()` runs; nothing after that call is computed."""
    captured: dict[str, object] = {}

    def hook(_mod: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.update(args=args, kwargs=kwargs)
        raise _Stop

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run()
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"{type(module).__name__} was never called by the encoder's forward pass")
    return captured["args"], captured["kwargs"]  # type: ignore[return-value]


def capture_inputs(blocks: Sequence[nn.Module], run: Callable[[], object]) -> list[torch.Tensor]:
    """The hidden states entering each of `blocks` (in call order) during `run()`, still in the autograd graph;
    the forward pass stops at the last of them (the blocks after it are never evaluated)."""
    seen: list[torch.Tensor] = []
    handles = []

    def hook(_mod: nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append(_hidden_states_of(args, kwargs))
        if len(seen) == len(blocks):
            raise _Stop

    try:
        handles = [b.register_forward_pre_hook(hook, with_kwargs=True) for b in blocks]
        run()
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    if len(seen) != len(blocks):
        raise RuntimeError(f"expected {len(blocks)} encoder blocks to run, saw {len(seen)}")
    return seen
