"""Where and how a run computes: the device, its precision, the GPU peak FLOPs for MFU, DDP setup.

CUDA when present, with bf16 autocast and TF32 matmuls; otherwise the CPU in fp32. Under
torchrun (env RANK / WORLD_SIZE / LOCAL_RANK) a process group is started: gloo on the CPU,
nccl on CUDA. Gradients are averaged by `all_reduce_gradients`, which the loop calls after
accumulation, so objectives may call their models any way they like (see objectives/base.py).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.project.problems import LLMLabError

DEVICES = ("cpu", "cuda")

# Dense bf16 tensor-core peak FLOP/s (no sparsity), matched against torch.cuda.get_device_name.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "A10G": 125e12,
    "A10": 125e12,
    "L40S": 362e12,
    "L40": 181e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
    "A6000": 155e12,
    "V100": 125e12,  # fp16 tensor cores; V100 has no bf16
    "T4": 65e12,
}


@dataclass(frozen=True)
class Precision:
    """The dtype a run computes in; `autocast()` is the context its forward passes run under."""

    name: str  # "bf16" | "fp32"
    device_type: str

    def autocast(self):
        if self.name == "bf16":
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def pick_device(requested: str | None = None, local_rank: int = 0) -> torch.device:
    """CUDA when present (or asked for), else the CPU; under torchrun, this rank's GPU."""
    if requested not in (None, *DEVICES):
        raise LLMLabError(f"device: {requested!r} is not one of {', '.join(DEVICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise LLMLabError("device: cuda was asked for but no CUDA GPU is visible to PyTorch")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def pick_precision(device: torch.device) -> tuple[Precision, str | None]:
    """bf16 autocast on a GPU that has it, else fp32; the second item is a warning to show."""
    if device.type != "cuda":
        return Precision("fp32", device.type), None
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if torch.cuda.is_bf16_supported():
        return Precision("bf16", "cuda"), None
    name = torch.cuda.get_device_name(device)
    return Precision("fp32", "cuda"), (
        f"{name} has no bf16 support: training in fp32 (slower, twice the activation memory); "
        "fp16 is not offered because it needs loss scaling"
    )


def peak_flops(device: torch.device) -> float | None:
    """The GPU's peak FLOP/s for MFU: env LLMLAB_PEAK_FLOPS, else the table, else None."""
    if os.environ.get("LLMLAB_PEAK_FLOPS"):
        return float(os.environ["LLMLAB_PEAK_FLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS.items():
        if key in name:
            return flops
    return None


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly one-process) data-parallel run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def distributed_from_env() -> Distributed:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    return Distributed(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_distributed(dist_info: Distributed, device: torch.device, init_method: str | None = None) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA) unless this is a single process."""
    if not dist_info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, init_method=init_method or "env://", rank=dist_info.rank, world_size=dist_info.world_size
    )


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's weights."""
    if dist.is_initialized():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def all_reduce_gradients(params: list[torch.Tensor]) -> None:
    """Average the gradients of `params` over ranks, in one flat buffer (one collective)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for p in params:  # a parameter unused on this rank still takes part in the average
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = average_over_ranks(torch.cat([g.reshape(-1) for g in grads]))
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (a one-item list in a single process)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's `obj` on every rank (`obj` itself in a single process)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of `tensor` over ranks (SUM then divide: gloo has no AVG)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return tensor


def compile_model(model: torch.nn.Module) -> str | None:
    """`torch.compile` the model in place; graphs that fail to compile run eagerly.

    Returns a warning to show when compilation cannot even start.
    """
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a failed graph falls back to eager, with a warning
    try:
        model.compile()
    except Exception as error:
        return f"compile: torch.compile is unavailable here ({error}); training without it"
    return None


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
