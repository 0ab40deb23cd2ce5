"""A run's memory: measured on any device (deterministically), and checked against a GPU before it starts.

`measure_step` trains one real step and counts bytes by what holds them: the weights, their
gradients, the optimizer's state and the tensors autograd keeps for backward (distinct storages,
the parameters aside), in the rows of engine/project/sizing.py's prediction. It counts live
tensors, not allocator traffic, so it is the same on every machine and for every run; what lives
only inside backward (a recomputed block, a loss chunk: sizing's `transient`) it does not see.
`check_fits` compares the prediction with the GPU's free memory and refuses a run that cannot fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from engine.project import sizing
from engine.project.problems import LLMLabError


def _bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors`."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


class SavedForBackward:
    """Within the block: the bytes of every distinct storage autograd saves for backward, but `excluded`'s."""

    def __init__(self, excluded: Iterable[torch.Tensor] = ()):
        self.excluded = {t.untyped_storage().data_ptr() for t in excluded}
        self.storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.excluded:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> SavedForBackward:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def measure_step(
    module: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable[[], torch.Tensor]
) -> dict[str, int]:
    """One optimizer step of `loss_fn()`: bytes of weights, gradients, optimizer state, activations, total."""
    params = list(module.parameters())
    with SavedForBackward(params) as saved:
        loss = loss_fn()
    loss.backward()
    trainable = [p for p in params if p.grad is not None]
    row = {"weights": _bytes(params), "gradients": _bytes(p.grad for p in trainable)}
    optimizer.step()
    row |= {"optimizer": _bytes(_state_tensors(optimizer)), "activations": saved.bytes}
    row["total"] = sum(row.values())
    optimizer.zero_grad(set_to_none=True)
    return row


def _state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The optimizer's state tensors (a Composite's parts' too), step counters aside."""
    parts = getattr(optimizer, "parts", {"": optimizer}).values()
    return [v for part in parts for s in part.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()]


def check_fits(project, stage: str, model: torch.nn.Module, device: torch.device, precision: str, world_size: int):
    """On CUDA: refuse a run whose predicted peak per device exceeds what the device has free
    (its free memory plus the starting model already loaded there), saying what would fit.

    The prediction is for full training; a LoRA stage trains far fewer parameters and is not checked.
    """
    lora = getattr(project.stage(stage), "lora", None)
    if device.type != "cuda" or (lora is not None and lora.enabled):
        return
    free, _ = torch.cuda.mem_get_info(device)
    free += _bytes(p for p in model.parameters() if p.device == device)
    advice = sizing.fitting_batch(project, model.config.vocab_size, stage, free, precision, world_size)
    if advice:
        raise LLMLabError(advice)
