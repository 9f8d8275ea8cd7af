"""torch.distributed glue: a run launched by ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK set) joins
the process group (NCCL on GPUs, gloo on CPU); otherwise everything is a no-op single process.

At the end of a run rank 0 alone evaluates and writes the report while the other ranks wait at a
barrier, so the process group's timeout (``AEZOO_DIST_TIMEOUT_MIN``, default 30 minutes, also
NCCL's hang detection) must outlast that evaluation. (A second, long-timeout gloo group would be
neater, but ``new_group`` re-reads a dead worker's address after a torchrun restart.)
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
import torch
import torch.distributed as dist

_TIMEOUT = timedelta(minutes=float(os.environ.get("AEZOO_DIST_TIMEOUT_MIN", "30")))


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restart: int = 0  # torchrun's TORCHELASTIC_RESTART_COUNT: 0 on the first attempt

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over ranks in place (no-op in one process)."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            t /= self.world_size
        return t

    def all_gather(self, t: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """Every rank's copy of ``t`` (same shape on all ranks), in rank order, on the CPU; the
        exchange runs on ``device`` (NCCL moves only CUDA tensors)."""
        if not self.enabled:
            return [t]
        t = t.to(device)
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t.contiguous())
        return [o.cpu() for o in out]


def init(device_type: str) -> DistContext:
    """Join the process group if launched by torchrun; safe to call twice."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if world <= 1:
        return DistContext(restart=restart)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend, timeout=_TIMEOUT, **_attempt_store(rank, world, restart))
        atexit.register(_shutdown)
    return DistContext(rank=rank, world_size=world, local_rank=local, restart=restart)


def _attempt_store(rank: int, world: int, restart: int) -> dict[str, Any]:
    """Under torchrun, a store whose keys are private to this restart attempt. torchrun keeps one
    TCP store across ``--max-restarts`` attempts and the process group's keys are not per attempt,
    so a restarted worker could read a dead worker's address and fail to connect (torch 2.13)."""
    if "TORCHELASTIC_RESTART_COUNT" not in os.environ:
        return {}  # launched some other way: the env:// default
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    tcp = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                        is_master=rank == 0 and not agent_hosts, timeout=_TIMEOUT, multi_tenant=True)
    return {"store": dist.PrefixStore(f"aezoo/attempt{restart}/", tcp), "rank": rank, "world_size": world}


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# --- per-rank RNG state in checkpoints -----------------------------------------------------------
def rng_state(device: torch.device) -> torch.Tensor:
    """This process's RNG state as one uint8 tensor: the CPU generator, then the device's (CUDA)."""
    parts = [torch.get_rng_state()]
    if device.type == "cuda":
        parts.append(torch.cuda.get_rng_state(device))
    return torch.cat(parts)


def set_rng_state(state: torch.Tensor, device: torch.device) -> None:
    n = torch.get_rng_state().numel()
    torch.set_rng_state(state[:n].clone())
    if device.type == "cuda" and state.numel() > n:
        torch.cuda.set_rng_state(state[n:].clone(), device)


def gather_rng(ctx: DistContext, device: torch.device) -> dict[str, torch.Tensor]:
    """Checkpoint tensors ``rng.rank{r}`` holding every rank's RNG state (collective; empty in one process)."""
    if not ctx.enabled:
        return {}
    return {f"rng.rank{r}": s for r, s in enumerate(ctx.all_gather(rng_state(device), device))}


def restore_rng(ctx: DistContext, tensors: dict[str, torch.Tensor], device: torch.device, seed: int, step: int) -> None:
    """After ``load_checkpoint`` (which restores rank 0's RNG on every rank), give each rank its own stream:
    the saved one when the checkpoint came from as many processes, else a fresh seeded one for ranks > 0
    (rank 0 keeps the saved stream, so a one-process run continues bit for bit on rank 0)."""
    key = f"rng.rank{ctx.rank}"
    saved = sum(k.startswith("rng.rank") for k in tensors)
    if saved == ctx.world_size and key in tensors:
        set_rng_state(tensors[key], device)
    elif ctx.rank > 0:
        torch.manual_seed((seed + 1 + ctx.rank) * 1_000_003 + step)
