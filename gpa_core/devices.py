"""Choosing the Torch device: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import os

import torch

from gpa_core.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """The torch.device for a configuration's ``device`` field, with a clear error if unavailable."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device 'cuda' was requested but no CUDA GPU is available here (use 'auto' or 'cpu')"
        )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(
            "device 'mps' was requested but Apple MPS is not available here (use 'auto' or 'cpu')"
        )
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A human label, e.g. 'CUDA (NVIDIA H200)' or 'CPU (2 threads)'."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def cpu_threads() -> int:
    """CPU threads this process may use: GPA_THREADS if set, else the CPUs available to it."""
    env = os.environ.get("GPA_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
