"""GPAFlow's steps on the compiled kernel: the ``Engine`` (see :mod:`gpa_core.engine.flow`) whose
``advance`` runs ``step.advance_members`` once per member group for a whole chunk of steps.

Members are independent, so a batch is split over threads with no synchronisation: each group of
members goes to a thread of its own. With fewer members than threads, a member's lanes may be split
over threads as well (``GPAFlow.threads_per_member``, opt-in), which meet at barriers; the numbers
do not depend on the split (see :mod:`~gpa_core.engine.kernel.lanes`).
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch

from gpa_core.algorithm.discriminator import WARM_UP_ITERATIONS
from gpa_core.engine.kernel import step
from gpa_core.engine.kernel.args import Group, Params, Points, Scratch, Status, pack
from gpa_core.engine.kernel.codes import RECORD_CODES
from gpa_core.engine.kernel.lanes import LANES, NSTAT

if TYPE_CHECKING:
    from gpa_core.engine.flow import GPAFlow


class CompiledEngine:
    """The compiled path of a GPAFlow (CPU, float32, no gradient penalty): made once the flow has
    its network and optimizer, it starts the members (Algorithm 3.1 lines 3–4) in the kernel."""

    def __init__(self, flow: GPAFlow) -> None:
        # the kernel reads and writes rows in place: C-contiguous tensors, the generated points
        # (an empty (K, 0, d) without any) among them
        flow.Y = flow.Y.contiguous()
        self.X = flow.X.contiguous()
        self.gen = torch.zeros(flow.K, 0, flow.d, dtype=flow.dtype) if flow.G is None else flow.G.contiguous()
        if flow.G is not None:
            flow.G = self.gen
        self._pool: tuple[ThreadPoolExecutor, int] | None = None  # (pool, size), kept: ~1 ms to make
        # kept between calls, as the plain tuples advance_members is passed (see there): each
        # thread's working memory per (task, threads), each member group's shared buffers
        self._scratch: dict[tuple[int, int], tuple] = {}
        self._shared: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        self._configure(flow)
        step.prepare_members(self.X.numpy(), _params(flow), self.net, self.settings, WARM_UP_ITERATIONS)

    def _configure(self, flow: GPAFlow) -> None:
        self.net, self.settings = pack(flow.configs, flow.net, flow._layer_scale, flow.optimizer)
        self._constants = (tuple(self.net), tuple(self.settings))

    def reconfigure(self, flow: GPAFlow) -> None:
        """Take up the flow's new configurations and project W under the new L (line 9)."""
        self._configure(flow)
        step.project_members(_params(flow), self.net, self.settings)

    def advance(self, flow: GPAFlow, n: int) -> int:
        """Up to ``n`` steps of every active member: one kernel call per group of members for the
        whole chunk; returns the steps taken."""
        K = flow.K
        settings = self.settings
        status = Status(
            alive=flow.alive.numpy(),
            t=flow.t.numpy(),
            runaway=flow.runaway_radius.numpy(),
            dead_step=flow.diverged_step.numpy(),
            dead_time=flow.diverged_time.numpy(),
            dead_info=np.zeros((K, 2)),
            rec=np.full((max(n, 1), len(RECORD_CODES), K), np.nan),
        )
        alive_before = status.alive.copy()
        params = _params(flow)
        P = params.theta.shape[1]
        # the named tuples as plain ones, which Numba types faster (see step.advance_members)
        state = (
            tuple(Points(flow.Y.numpy(), self.gen.numpy(), self.X.numpy())),
            tuple(params),
            tuple(status),
        )
        net, config = self._constants

        def run(
            task: int, members: np.ndarray, rank: int, threads: int, shared: tuple[np.ndarray, ...]
        ) -> int:
            key = (task, threads)  # each concurrent task its own working memory
            if key not in self._scratch:
                scratch = thread_scratch(self.net.widths, flow.M, self.gen.shape[1], flow.N, P, rank, threads)
                self._scratch[key] = tuple(scratch)
            group = tuple(Group(rank, threads, *shared))
            try:
                return int(
                    step.advance_members(members, flow.n, n, *state, net, config, group, self._scratch[key])
                )
            except BaseException:
                shared[0][1] = 1  # partners waiting at a barrier for this thread stop waiting
                self._shared.clear()  # (and may still be running: the next call gets new buffers)
                raise

        # only members with steps to go, dealt longest-first round robin: equal work per thread;
        # with fewer members than threads, a member's lanes may be split over threads (opt-in)
        steps_left = np.minimum(settings.steps - flow.n, n)
        active = np.flatnonzero(alive_before & (steps_left > 0))
        if active.size == 0:
            return 0
        order = active[np.argsort(-steps_left[active], kind="stable")]
        threads = max(1, flow.kernel_threads)
        per_group = max(1, min(LANES, flow.threads_per_member, threads // active.size))
        n_groups = min(active.size, max(1, threads // per_group))
        tasks = []
        for g in range(n_groups):
            members = np.sort(order[g::n_groups]).astype(np.int64)
            shared = self._group_buffers(g, per_group, P)
            tasks += [(len(tasks) + rank, members, rank, per_group, shared) for rank in range(per_group)]
        if len(tasks) == 1:
            taken = run(*tasks[0])
        else:  # every task at once (partners wait on each other at barriers): a worker each
            taken = max(self._workers(len(tasks)).map(lambda task: run(*task), tasks))
        rows = [s for s in range(taken) if (flow.n + s) % settings.record_every == 0]
        if rows:
            flow.history.extend(
                np.asarray([flow.n + s for s in rows], dtype=np.int64),
                {name: status.rec[rows, code, :] for name, code in RECORD_CODES.items()},
            )
        for k in np.flatnonzero(alive_before & ~status.alive):
            finite, gauge = status.dead_info[k]
            flow.reasons[k] = flow._divergence_reason(int(k), bool(finite), float(gauge))
        flow.n += taken
        return taken

    def _group_buffers(self, group: int, threads: int, n_params: int) -> tuple[np.ndarray, ...]:
        """Member group ``group``'s shared buffers (``group_buffers``), its barrier reset."""
        shared = self._shared.get((group, threads))
        if shared is None:
            shared = self._shared[group, threads] = group_buffers(n_params)
        shared[0][:] = 0  # the barrier counts from 0 in every call; no thread has failed
        return shared

    def _workers(self, workers: int) -> ThreadPoolExecutor:
        """Worker threads for the member groups (at least ``workers``), shut down when this engine
        (its flow) is garbage collected."""
        if self._pool is None or self._pool[1] < workers:
            if self._pool is not None:
                self._pool[0].shutdown(wait=False)
            pool = ThreadPoolExecutor(workers, thread_name_prefix="gpa-kernel")
            weakref.finalize(self, pool.shutdown, wait=False)
            self._pool = (pool, workers)
        return self._pool[0]


def _params(flow: GPAFlow) -> Params:
    net, opt = flow.net, flow.optimizer
    return Params(
        net.flat.numpy(), opt.m.numpy(), opt.v.numpy(), opt.t.numpy(), net.power_flat.numpy(),
        net.diagnostic_flat.numpy(),
    )  # fmt: skip


def group_buffers(n_params: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What the threads running one member group share (``Group``'s arrays): a barrier counter and
    a failure flag, the lanes' gradient partials and the lanes' training and evaluation statistics
    (two of each, alternating by barrier parity so that no thread overwrites what a partner is still
    reading)."""
    return (
        np.zeros(2, dtype=np.int64),
        np.empty((2, LANES, n_params), dtype=np.float32),
        np.empty((2, LANES, NSTAT)),
        np.empty((2, LANES, NSTAT)),
    )


def thread_scratch(widths: np.ndarray, M: int, Gn: int, N: int, P: int, rank: int, nthreads: int) -> Scratch:
    """Working memory for thread ``rank`` of ``nthreads`` running members of this shape: its lanes'
    rows and layer buffers (as ``step.workspace``, one row per lane it runs), the gradient, and the
    velocities and new positions of the moving points. Kept between calls: fresh megabytes cost more
    in page faults than a step's arithmetic at M = N = 4096."""
    d = int(widths[0])
    slots = (LANES - rank + nthreads - 1) // nthreads
    most = sum(-(-n // LANES) for n in (M, Gn, N))  # the largest lane's rows
    sizes = [buf.size for buf in step.workspace(np.asarray(widths, dtype=np.int64), most)]
    f32 = np.float32
    return Scratch(
        rows=np.empty((most, d), dtype=f32),
        train_rows=np.empty((slots, most, d), dtype=f32),
        dV=np.empty((slots, most), dtype=f32),
        ws=tuple(np.empty((slots, size), dtype=f32) for size in sizes),
        grad=np.empty(P, dtype=f32),
        v1=np.empty((M + Gn, d), dtype=f32),
        y_new=np.empty((M + Gn, d), dtype=f32),
    )
