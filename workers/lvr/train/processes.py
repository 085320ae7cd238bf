"""The run's processes: rank, world and device from torchrun's environment, and the collectives the loops
use."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Env:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_env() -> Env:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Env(rank, world, local, device)


def barrier(env: Env) -> None:
    if env.world > 1:
        dist.barrier()


def all_reduce_max(env: Env, value: float) -> float:
    if env.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_reduce_sum(env: Env, value: float) -> float:
    if env.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item())


def ensure_process_group(env: Env) -> None:
    """A one-rank process group on an in-memory store (no torchrun / MASTER_ADDR needed) for FSDP2 at world 1."""
    if not dist.is_initialized():
        dist.init_process_group("nccl" if env.device.type == "cuda" else "gloo", store=dist.HashStore(),
                                rank=0, world_size=1)


def single_node(env: Env) -> bool:
    return int(os.environ.get("LOCAL_WORLD_SIZE", env.world)) == env.world
