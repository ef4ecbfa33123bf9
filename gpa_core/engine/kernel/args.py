"""The compiled kernel's arguments, packed into named tuples (Numba passes them as structs).

What a call needs falls into a few groups, each a named tuple of NumPy arrays and scalars:

- :class:`Net`: φ's shape, shared by the batch (``BatchedMLP``'s layout of a row of its buffers);
- :class:`Settings`: the batch's configurations — per member (K,) arrays, then what the members
  share; :func:`pack` builds it, with the ``Net``, from the FlowConfigs;
- :class:`Params`: what training changes (θ = weights, biases and ν; Adam's moments and step
  counts; the power-iteration vectors), rows of the flow's own tensors;
- :class:`Points`: particles, generated points and target;
- :class:`Status`: per member alive, time, runaway radius and divergence, and the records;
- :class:`Group` and :class:`Scratch`: one thread's share of a member group and its working memory.

The arrays of ``Params``, ``Points`` and ``Status`` are NumPy views of the flow's tensors: the kernel
updates the flow in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from gpa_core.algorithm.discriminator import BatchedAdam, BatchedMLP
from gpa_core.config import FlowConfig
from gpa_core.engine.flow import objective_kind, projection_mode
from gpa_core.engine.kernel import codes


class Net(NamedTuple):
    """φ's shape: where each layer lives in a row of ``BatchedMLP.flat`` (and of its vectors)."""

    widths: np.ndarray  # (D + 1,) int64: d, the hidden widths, 1
    w_off: np.ndarray  # (D,) where layer l's weights (row-major o × i) start
    b_off: np.ndarray  # (D,) where its biases start (ν is the last entry of a row)
    v_off: np.ndarray  # (D,) where its power-iteration vector starts in a row of the vectors
    acts: np.ndarray  # (D - 1,) activation codes of the hidden layers (one RELU if there are none)


class Settings(NamedTuple):
    """A batch's configurations in the kernel's terms: (K,) arrays, then the shared values."""

    code: np.ndarray  # int64 objective codes (codes.OBJECTIVE_CODES)
    alpha: np.ndarray  # float64 α of the α-divergence
    scale: np.ndarray  # float32 L^{1/D}: each layer's norm after the projection
    lip: np.ndarray  # int64 projection codes (codes.LIPSCHITZ_CODES)
    lr: np.ndarray  # float64 Adam learning rates
    dt: np.ndarray  # float32 Δt
    heun: np.ndarray  # bool: Heun's corrector (Remark 3.2), else Euler
    steps: np.ndarray  # int64 the step each member stops at
    inner: int  # m_max, Adam steps per particle step
    power_its: int  # power iterations per projection
    reset_adam: bool  # fresh Adam state every particle step (optimizer_state = "reset")
    record_every: int
    beta1: float  # Adam's constants (BatchedAdam's)
    beta2: float
    eps: float


class Params(NamedTuple):
    """What training changes, one row per member: ``BatchedMLP``'s and ``BatchedAdam``'s buffers."""

    theta: np.ndarray  # (K, P) float32 weights, biases, ν (BatchedMLP.flat)
    mom: np.ndarray  # (K, P) float32 Adam's first moments
    vel: np.ndarray  # (K, P) float32 Adam's second moments
    tstep: np.ndarray  # (K,) float32 Adam's step counts
    pvec: np.ndarray  # (K, V) float32 the projection's power-iteration vectors
    dvec: np.ndarray  # (K, V) float32 the recorded bound's own vectors


class Points(NamedTuple):
    """The point clouds a call moves (particles, generated points) and reads (the target)."""

    Y: np.ndarray  # (K, M, d) float32 particles, moved in place
    gen: np.ndarray  # (K, G, d) float32 generated points (G may be 0), moved in place
    X: np.ndarray  # (K, N, d) float32 target


class Status(NamedTuple):
    """Each member's life: alive, time, divergence step/time/reason, and the recorded history."""

    alive: np.ndarray  # (K,) bool
    t: np.ndarray  # (K,) float64 physical time
    runaway: np.ndarray  # (K,) float32 radius beyond which particles have run away
    dead_step: np.ndarray  # (K,) int64 the step a member diverged at (-1: it has not)
    dead_time: np.ndarray  # (K,) float64 its time then
    dead_info: np.ndarray  # (K, 2) float64: were its values finite, the overflow gauge
    rec: np.ndarray  # (steps, fields, K) float64 records (codes.RECORD_CODES), NaN where inactive


class Group(NamedTuple):
    """One thread's place among the threads sharing a member group, and what they share."""

    rank: int
    nthreads: int
    sync: np.ndarray  # (2,) int64: barrier counter, failure flag
    gpart: np.ndarray  # (2, LANES, P) float32 the lanes' gradients (by barrier parity)
    spart: np.ndarray  # (2, LANES, NSTAT) float64 the lanes' training statistics
    epart: np.ndarray  # (2, LANES, NSTAT) float64 the lanes' evaluation statistics


class Scratch(NamedTuple):
    """One thread's working memory (see ``engine.thread_scratch``)."""

    rows: np.ndarray  # (rows, d) evaluation rows: the lanes take turns
    train_rows: np.ndarray  # (slots, rows, d) training rows, per lane the thread runs
    dV: np.ndarray  # (slots, rows) ∂/∂V
    ws: tuple  # six (slots, size) layer buffers (step.workspace, per lane)
    grad: np.ndarray  # (P,) the parameter gradient
    v1: np.ndarray  # (M + G, d) velocities at Y_n
    y_new: np.ndarray  # (M + G, d) the new positions


def network(net: BatchedMLP) -> Net:
    """The kernel's view of an eager network's layout."""
    i64 = np.int64
    return Net(
        widths=np.asarray(net.widths, dtype=i64),
        w_off=np.asarray(net.weight_offsets, dtype=i64),
        b_off=np.asarray(net.bias_offsets, dtype=i64),
        v_off=np.asarray(net.vector_offsets[:-1], dtype=i64),
        acts=np.asarray([codes.ACTIVATION_CODES[a] for a in net.activations] or [codes.RELU], dtype=i64),
    )


def pack(
    configs: Sequence[FlowConfig], net: BatchedMLP, layer_scale: torch.Tensor, optimizer: BatchedAdam
) -> tuple[Net, Settings]:
    """The ``Net`` and ``Settings`` of a batch: its FlowConfigs, its network, L^{1/D} as the eager
    projection computes it (``layer_scale``, so both paths scale by the same numbers) and Adam's
    constants."""
    first = configs[0]  # the shared fields are the same in every member (config.check_batch)
    settings = Settings(
        code=np.asarray([codes.objective_code(objective_kind(c)) for c in configs], dtype=np.int64),
        alpha=np.asarray([c.alpha for c in configs], dtype=np.float64),
        scale=layer_scale.numpy().astype(np.float32),
        lip=np.asarray([codes.LIPSCHITZ_CODES[projection_mode(c)] for c in configs], dtype=np.int64),
        lr=np.asarray([c.lr for c in configs], dtype=np.float64),
        dt=np.asarray([c.dt for c in configs], dtype=np.float32),
        heun=np.asarray([c.solver == "heun" for c in configs], dtype=np.bool_),
        steps=np.asarray([c.steps for c in configs], dtype=np.int64),
        inner=int(first.inner_steps),
        power_its=int(first.power_iterations),
        reset_adam=first.optimizer_state == "reset",
        record_every=int(first.record_every),
        beta1=float(optimizer.beta1),
        beta2=float(optimizer.beta2),
        eps=float(optimizer.eps),
    )
    return network(net), settings
