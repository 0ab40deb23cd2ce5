"""Sharded training (parallel = "fsdp"): FSDP2 over the model, and checkpoints of sharded state.

`shard_model` applies `torch.distributed.fsdp.fully_shard` to every decoder block, then to the
root (embeddings, final norm, head): each rank keeps 1/world_size of every parameter, its
gradient and its optimizer state (DTensors), all-gathers a block's weights just before its
forward and backward, and reduce-scatters (averages) the gradients. On CUDA the gathered
weights are bf16 and the reduction fp32 (MixedPrecisionPolicy); on the CPU (gloo) all is fp32.

A checkpoint of a sharded run is still a plain Hugging Face model directory: `full_state_dict`
gathers the weights onto rank 0 and `plain_model` puts them into an unsharded model of the same
class (on the meta device, so no copy is made) for `save_pretrained`. The optimizer state stays
sharded: every rank writes its shard with torch.distributed.checkpoint (DCP) into the checkpoint's
OPTIMIZER_DCP folder, keyed by parameter name, so a resume with any world size (one process
included) reads it back (`load_optimizer`). Scheduler, step, data positions and RNG stay in
trainer_state.pt as before. Checkpoint folders must be on a file system every rank sees.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

from engine.device import barrier
from engine.optim import Composite


def shard_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """FSDP2 in place over every rank of the process group: each decoder block its own unit, then the
    root; returns `model`."""
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))  # the run's device, not torch's guess
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if device.type == "cuda" and torch.cuda.is_bf16_supported()
        else MixedPrecisionPolicy()
    )
    for block in model.model.layers:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def sync_gradients(model: torch.nn.Module, sync: bool) -> None:
    """Whether the coming backward reduce-scatters: off for all but a step's last micro-batch, whose
    backward then reduces the accumulated sum once (a no-op on an unsharded model)."""
    if isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(sync)


def grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The global gradient norm (over every rank's shard when sharded); gradients scaled down to
    `max_norm` when above it (0: no clipping)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if isinstance(norm, DTensor):  # a partial norm on each rank: reduce it to the global one
        norm = norm.full_tensor()
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every rank takes part; rank 0 gets the whole weights on the CPU, the others an empty dict."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def plain_model(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """An unsharded model of `model`'s own class holding `state` (no copy): what save_pretrained writes."""
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    with torch.device("meta"):
        plain = cls(model.config)
    plain.load_state_dict(state, assign=True)
    plain.tie_weights()
    return plain


def _parts(optimizer: torch.optim.Optimizer) -> dict[str, torch.optim.Optimizer]:
    """The optimizers DCP sees: a Composite's parts (Muon + AdamW), or the one optimizer."""
    return optimizer.parts if isinstance(optimizer, Composite) else {"optimizer": optimizer}


def save_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Every rank writes its shard of the optimizer state into `folder` (collective)."""
    state = {name: get_optimizer_state_dict(model, part) for name, part in _parts(optimizer).items()}
    if dist.get_rank() == 0:
        shutil.rmtree(folder, ignore_errors=True)  # a previous attempt's leftovers
    barrier()
    dcp.save(state, checkpoint_id=folder)


def load_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Read the optimizer state DCP wrote (by any number of ranks) into this run's sharding."""
    parts = _parts(optimizer)
    state = {name: get_optimizer_state_dict(model, part) for name, part in parts.items()}  # the layout to fill
    dcp.load(state, checkpoint_id=folder, no_dist=not dist.is_initialized())  # one process: no group
    for name, part in parts.items():
        set_optimizer_state_dict(model, part, optim_state_dict=state[name])
    if isinstance(optimizer, Composite):
        optimizer.regroup()
