"""How the threads of one member group share a member: fixed lanes of rows, and a spin barrier.

A member's rows (particles, generated points, target) are split into ``LANES`` fixed lanes. One
thread runs them one after the other; asked to (``GPAFlow.threads_per_member``, the CLI's
``--threads``), each lane runs on its own thread, and the lanes' gradient and statistic partials
meet at :func:`barrier` once per inner step. Partials are always combined in lane order, so a run's
numbers never depend on the thread count. The eager path has no twin: it computes all rows at once.
"""

from __future__ import annotations

import sys

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from gpa_core.engine.kernel.jit import jit

#: fixed parts of a member's rows; a thread runs one or more of them
LANES = 2
# a lane's partial statistics (float64): J's sums, the overflow gauge, the Donsker–Varadhan
# normaliser, the kinetic energy, the top speed, finiteness and the extent of the moved rows
S_SP, S_SF, S_SR, S_GAUGE, S_VMAX, S_SEXP, S_KIN, S_SPEED, S_FINITE, S_EXTENT = range(10)
NSTAT = 16  # padded to two cache lines against false sharing


@jit
def lane_rows(n, lane):
    """Rows [start, stop) of ``lane`` among a member's n rows (of one kind)."""
    return (n * lane) // LANES, (n * (lane + 1)) // LANES


@jit
def lane_spans(M, Gn, N, lane):
    """A lane's particles [p0, p1), generated points [g0, g1) and target rows [q0, q1)."""
    p0, p1 = lane_rows(M, lane)
    g0, g1 = lane_rows(Gn, lane)
    q0, q1 = lane_rows(N, lane)
    return p0, p1, g0, g1, q0, q1


def _item_pointer(context, builder, aryty, ary, index):
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, [index])


@intrinsic
def _atomic_add(typingctx, arr, idx, val):
    """arr[idx] += val as one sequentially consistent atomic operation (int64 arrays)."""
    sig = types.int64(arr, types.intp, types.int64)

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def _atomic_load(typingctx, arr, idx):
    """arr[idx] read with acquire ordering: writes made before a partner's atomic add are seen."""
    sig = types.int64(arr, types.intp)

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


# a thread waiting at a barrier for a partner that is not running sleeps for a moment: the
# core falls idle, so the scheduler can move the partner (or the app's UI thread) onto it.
# (Yielding is not enough: it only hands the core to threads already queued on it.)
if sys.platform == "win32":
    _sleep_a_moment = types.ExternalFunction("Sleep", types.void(types.uint32))  # milliseconds
    _SLEEP_UNITS = 0  # Sleep(0): give up the time slice
else:
    _sleep_a_moment = types.ExternalFunction("usleep", types.intc(types.uint32))  # microseconds
    _SLEEP_UNITS = 20


@jit
def barrier(group, count):
    """Wait until every thread working on this member group (an ``args.Group``) has arrived
    (threads > 1); ``count`` counts this thread's arrivals (its parity picks the partials'
    buffer)."""
    nthreads, sync = group.nthreads, group.sync
    count[0] += 1
    if nthreads == 1:
        return
    target = count[0] * nthreads
    _atomic_add(sync, 0, 1)
    spins = 0
    while _atomic_load(sync, 0) < target:
        if _atomic_load(sync, 1) != 0:  # a partner thread failed: stop waiting for it
            return
        spins += 1
        if spins >= 40_000:  # ~30 µs: the partner is not running; free this core for it
            _sleep_a_moment(_SLEEP_UNITS)
