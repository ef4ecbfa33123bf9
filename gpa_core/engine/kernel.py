"""The compiled CPU path of Algorithm 3.1: whole particle steps in one Numba-compiled call.

A small GPA step (Fig. 2–3: 2-D, M = N = 200, a 3×32 network, 3 inner Adam steps) is about
17 MFLOP spread over ~1300 tensor operations; run eagerly, per-operation overhead costs ten times
the arithmetic. Here one call advances a group of members by a chunk of particle steps — inner
training (forward, objective (3.2), hand-written backward, Adam, projection W ← L^{1/D} W/‖W‖),
the particle update (Euler, eq. (3.2); Heun, Remark 3.2), the divergence test and the recording.

Matrix products with a multiple of 32 result columns (the paper's widths) run in small register
kernels written with 8-wide LLVM vectors (``_matmul``, ``_matmul_tn``): for n × 32 by 32 × 32
shapes OpenBLAS spends a third of its time packing operands. Other widths go to BLAS. Bias,
activation and ReLU's derivative are fused passes, into buffers allocated once per call.

Parallelism: members are independent, so a batch is split over threads with no synchronisation.
A member's rows (particles, generated points, target) are also split into ``LANES`` fixed lanes.
One thread runs them one after the other; asked to (``GPAFlow.threads_per_member``, the CLI's
``--threads``), each lane runs on its own thread, the lanes' gradient and statistic partials meet
at a spin barrier once per inner step, and every thread takes the same Adam step on its own copy
of the parameters. Partials are always combined in lane order, so the numbers never depend on the
thread count.

The arithmetic is the eager path's, in float32 (sums accumulate in float64), and overflow stays an
outcome: e^{φ-ν-1} beyond float32's range becomes +∞ exactly as it does eagerly. A step agrees with
the eager path to float32 rounding; over a run, Adam's normalisation can grow such differences to a
learning-rate step on parameters whose gradient is rounding noise, so long runs agree in their
statistics, not digit by digit. A seeded run repeats exactly on either path, and on this one a member
runs bit for bit the same alone, in any batch and on any number of threads. The order of a sum is fixed
by the code only up to the CPU: ``reassoc`` lets LLVM vectorise a sum at the target's width and
``contract``/``llvm.fmuladd`` fuse multiply-adds where the CPU has FMA, and the BLAS fallback picks its
kernel by CPU, so two machines agree to float32 rounding, not bit for bit.

This module holds the kernels and the compile state only; ``GPAFlow`` decides which path runs.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

try:  # in requirements.txt; where it cannot be imported, the eager path is the only one
    import numba
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic, models, register_model
    from numba.typed import List
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

# objective codes (one per ObjectiveKind the kernel knows)
KL_LT, KL_DV, KL_DV_NAIVE, ALPHA, REVERSE_KL, JS = range(6)
# activation codes
RELU, LEAKY_RELU, SOFTPLUS, SMOOTH_RELU = range(4)
# Lipschitz modes
LIP_NONE, LIP_SPECTRAL, LIP_FROBENIUS = range(3)
# recorded fields, in History.FIELDS order
REC_TIME, REC_KINETIC, REC_DIVERGENCE, REC_SPEED, REC_BOUND, REC_GAUGE = range(6)

ACTIVATION_CODES = {"relu": RELU, "leaky_relu": LEAKY_RELU, "softplus": SOFTPLUS, "smooth_relu": SMOOTH_RELU}
LIPSCHITZ_CODES = {"none": LIP_NONE, "spectral": LIP_SPECTRAL, "frobenius": LIP_FROBENIUS}

# A member's rows (particles, generated points, target) are split into LANES fixed parts; a thread
# runs one or more lanes, and lane partial sums are combined in lane order, so a run's numbers do
# not depend on how many threads ran it.
LANES = 2
# a lane's partial statistics (float64), padded to two cache lines against false sharing
S_SP, S_SF, S_SR, S_GAUGE, S_VMAX, S_SEXP, S_KIN, S_SPEED, S_FINITE, S_EXTENT = range(10)
NSTAT = 16

SMALL_INPUT = 8  # narrow layers the register kernels do not fit multiply in a loop, not in BLAS
_FLAGS = {"reassoc", "contract"}  # vectorised sums and FMA; never 'nnan'/'ninf': ∞ is an outcome


def objective_code(f: str, kl_form: str, logsumexp: bool) -> int:
    if f == "kl":
        if kl_form == "lt":
            return KL_LT
        return KL_DV if logsumexp else KL_DV_NAIVE
    return {"alpha": ALPHA, "reverse_kl": REVERSE_KL, "js": JS}[f]


if numba is not None:
    _jit = njit(cache=True, nogil=True, fastmath=_FLAGS, error_model="numpy")
    _f32 = np.float32
    _LEAKY = np.float32(0.01)
    _EPS_SMOOTH = np.float32(0.5)
    _HALF_LOG2 = 0.5 * math.log(2.0)

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

    # -- 8-wide float32 registers for the small matrix products ------------------------------------
    # OpenBLAS packs its operands before every product; for the shapes here (n × 32 by 32 × 32) the
    # packing costs about a third of its time. These kernels keep a 2 × 32 block of the result in
    # eight 8-wide registers (LLVM vectors: AVX on x86, split into NEON/SSE pairs elsewhere) and
    # read the operands in place. They need C-contiguous rows and a multiple of 32 result columns;
    # anything else goes to BLAS.
    _V8 = ir.VectorType(ir.FloatType(), 8)

    class _F32x8(types.Type):
        def __init__(self):
            super().__init__(name="f32x8")

    _f32x8 = _F32x8()

    @register_model(_F32x8)
    class _F32x8Model(models.PrimitiveModel):
        def __init__(self, dmm, fe_type):
            super().__init__(dmm, fe_type, _V8)

    def _float32_array(arr):
        return isinstance(arr, types.Array) and arr.dtype == types.float32

    def _v8_pointer(context, builder, aryty, ary, index):
        data = context.make_array(aryty)(context, builder, ary).data
        return builder.bitcast(builder.gep(data, [index]), _V8.as_pointer())

    @intrinsic
    def _vload(typingctx, arr, index):
        """Eight float32 from flat element ``index`` of a contiguous array."""
        if not _float32_array(arr):
            return None
        sig = _f32x8(arr, types.intp)

        def codegen(context, builder, sig, args):
            return builder.load(_v8_pointer(context, builder, sig.args[0], args[0], args[1]), align=4)

        return sig, codegen

    @intrinsic
    def _vstore(typingctx, arr, index, value):
        if not _float32_array(arr):
            return None
        sig = types.void(arr, types.intp, _f32x8)

        def codegen(context, builder, sig, args):
            builder.store(args[2], _v8_pointer(context, builder, sig.args[0], args[0], args[1]), align=4)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def _sload(typingctx, arr, index):
        """The float32 at flat element ``index`` of a contiguous array."""
        if not _float32_array(arr):
            return None
        sig = types.float32(arr, types.intp)

        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            return builder.load(builder.gep(data, [args[1]]), align=4)

        return sig, codegen

    @intrinsic
    def _vsplat(typingctx, x):
        sig = _f32x8(types.float32)

        def codegen(context, builder, sig, args):
            undef = ir.Constant(_V8, ir.Undefined)
            v = builder.insert_element(undef, args[0], ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8))

        return sig, codegen

    @intrinsic
    def _vzero(typingctx):
        sig = _f32x8()

        def codegen(context, builder, sig, args):
            return ir.Constant(_V8, [0.0] * 8)

        return sig, codegen

    @intrinsic
    def _vfma(typingctx, a, b, c):
        """a·b + c lane by lane (fused where the CPU has FMA)."""
        sig = _f32x8(_f32x8, _f32x8, _f32x8)

        def codegen(context, builder, sig, args):
            fnty = ir.FunctionType(_V8, [_V8, _V8, _V8])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fmuladd.v8f32")
            return builder.call(fn, args)

        return sig, codegen

    def _lanewise(operation):
        """An intrinsic applying the LLVM IRBuilder float ``operation`` lane by lane."""

        @intrinsic
        def op(typingctx, a, b):
            sig = _f32x8(_f32x8, _f32x8)

            def codegen(context, builder, sig, args):
                return getattr(builder, operation)(args[0], args[1])

            return sig, codegen

        return op

    _vadd = _lanewise("fadd")
    _vmul = _lanewise("fmul")

    @intrinsic
    def _vwhere_positive(typingctx, z, x):
        """x where z > 0, else 0, lane by lane (ReLU's derivative applied to x)."""
        sig = _f32x8(_f32x8, _f32x8)

        def codegen(context, builder, sig, args):
            zero = ir.Constant(_V8, [0.0] * 8)
            return builder.select(builder.fcmp_ordered(">", args[0], zero), args[1], zero)

        return sig, codegen

    @_jit
    def _contiguous_rows(A):
        """Whether a float32 matrix is laid out row after row with no gaps (flat indexing works)."""
        if A.size == 0:  # NumPy may give empty arrays zero strides
            return True
        return (A.shape[1] <= 1 or A.strides[1] == 4) and (A.shape[0] <= 1 or A.strides[0] == 4 * A.shape[1])

    @_jit
    def _panels_fit(A, B, C):
        return B.shape[1] % 32 == 0 and _contiguous_rows(A) and _contiguous_rows(B) and _contiguous_rows(C)

    PLAIN, RELU_MASK, BIAS_RELU = range(3)  # what _matmul_into does as it stores a block of rows

    @_jit
    def _matmul(A, B, C):
        """C = A B (A: n × K, B: K × m, C: n × m)."""
        _matmul_into(A, B, C, C, C[:0, 0], C, PLAIN)

    @_jit
    def _matmul_relu(A, B, C, Z):
        """C = (A B) ⊙ 1[Z > 0]: a product followed by ReLU's derivative at pre-activations Z
        (n × m, or more rows), applied as the rows are stored. (Masking C in place afterwards
        compiles to masked stores, which are microcoded and slow on AMD Zen.)"""
        _matmul_into(A, B, C, Z, C[:0, 0], C, RELU_MASK)

    @_jit
    def _matmul_bias_relu(A, B, C, b, post):
        """A ReLU layer's forward pass: pre-activations C = A B + b and outputs post = max(C, 0),
        both written as the rows are stored (False where the register kernels do not fit)."""
        if not (_panels_fit(A, B, C) and _contiguous_rows(post) and b.strides[0] == 4):
            return False
        _matmul_into(A, B, C, C, b, post, BIAS_RELU)
        return True

    @_jit
    def _matmul_into(A, B, C, Z, b, post, mode):
        if not _panels_fit(A, B, C) or (mode == RELU_MASK and not _contiguous_rows(Z)):
            if mode == PLAIN:
                np.dot(A, B, C)
                return
            product = np.dot(A, B)
            for r in range(C.shape[0]):
                for c in range(C.shape[1]):
                    v = product[r, c]
                    C[r, c] = v if Z[r, c] > 0 else _f32(0.0)
            return
        n, K = A.shape
        m = B.shape[1]
        for p in range(0, m, 32):
            if mode == BIAS_RELU:
                bias0 = _vload(b, p)
                bias1 = _vload(b, p + 8)
                bias2 = _vload(b, p + 16)
                bias3 = _vload(b, p + 24)
            else:
                bias0 = bias1 = bias2 = bias3 = _vzero()
            r = 0
            while r < n:
                two = r + 1 < n
                a0 = r * K
                a1 = a0 + K if two else a0
                c00 = _vzero()
                c01 = _vzero()
                c02 = _vzero()
                c03 = _vzero()
                c10 = _vzero()
                c11 = _vzero()
                c12 = _vzero()
                c13 = _vzero()
                for k in range(K):
                    kb = k * m + p
                    b0 = _vload(B, kb)
                    b1 = _vload(B, kb + 8)
                    b2 = _vload(B, kb + 16)
                    b3 = _vload(B, kb + 24)
                    x0 = _vsplat(_sload(A, a0 + k))
                    x1 = _vsplat(_sload(A, a1 + k))
                    c00 = _vfma(x0, b0, c00)
                    c01 = _vfma(x0, b1, c01)
                    c02 = _vfma(x0, b2, c02)
                    c03 = _vfma(x0, b3, c03)
                    c10 = _vfma(x1, b0, c10)
                    c11 = _vfma(x1, b1, c11)
                    c12 = _vfma(x1, b2, c12)
                    c13 = _vfma(x1, b3, c13)
                o = r * m + p
                if mode == BIAS_RELU:
                    c00 = _vadd(c00, bias0)
                    c01 = _vadd(c01, bias1)
                    c02 = _vadd(c02, bias2)
                    c03 = _vadd(c03, bias3)
                    _vstore(post, o, _vwhere_positive(c00, c00))
                    _vstore(post, o + 8, _vwhere_positive(c01, c01))
                    _vstore(post, o + 16, _vwhere_positive(c02, c02))
                    _vstore(post, o + 24, _vwhere_positive(c03, c03))
                    if two:
                        c10 = _vadd(c10, bias0)
                        c11 = _vadd(c11, bias1)
                        c12 = _vadd(c12, bias2)
                        c13 = _vadd(c13, bias3)
                        _vstore(post, o + m, _vwhere_positive(c10, c10))
                        _vstore(post, o + m + 8, _vwhere_positive(c11, c11))
                        _vstore(post, o + m + 16, _vwhere_positive(c12, c12))
                        _vstore(post, o + m + 24, _vwhere_positive(c13, c13))
                if mode == RELU_MASK:
                    c00 = _vwhere_positive(_vload(Z, o), c00)
                    c01 = _vwhere_positive(_vload(Z, o + 8), c01)
                    c02 = _vwhere_positive(_vload(Z, o + 16), c02)
                    c03 = _vwhere_positive(_vload(Z, o + 24), c03)
                    if two:
                        c10 = _vwhere_positive(_vload(Z, o + m), c10)
                        c11 = _vwhere_positive(_vload(Z, o + m + 8), c11)
                        c12 = _vwhere_positive(_vload(Z, o + m + 16), c12)
                        c13 = _vwhere_positive(_vload(Z, o + m + 24), c13)
                _vstore(C, o, c00)
                _vstore(C, o + 8, c01)
                _vstore(C, o + 16, c02)
                _vstore(C, o + 24, c03)
                if two:
                    _vstore(C, o + m, c10)
                    _vstore(C, o + m + 8, c11)
                    _vstore(C, o + m + 16, c12)
                    _vstore(C, o + m + 24, c13)
                r += 2

    @_jit
    def _relu_outer(g, dv, w, z):
        """g[r, c] = dv[r] w[c] where z[r, c] > 0 else 0: the output layer's gradient through ReLU."""
        n, m = g.shape
        if m % 8 != 0 or not (_contiguous_rows(g) and _contiguous_rows(z)) or w.strides[0] != 4:
            for r in range(n):
                for c in range(m):
                    v = dv[r] * w[c]
                    g[r, c] = v if z[r, c] > 0 else _f32(0.0)
            return
        for r in range(n):
            s = _vsplat(dv[r])
            for c in range(0, m, 8):
                p = r * m + c
                _vstore(g, p, _vwhere_positive(_vload(z, p), _vmul(s, _vload(w, c))))

    @_jit
    def _column_sums(g, out):
        """out[j] = Σ_r g[r, j] (a bias gradient), 32 columns at a time in registers."""
        n, m = g.shape
        if m % 32 != 0 or not _contiguous_rows(g) or out.strides[0] != 4:
            for j in range(m):
                out[j] = 0.0
            for r in range(n):
                for j in range(m):
                    out[j] += g[r, j]
            return
        for p in range(0, m, 32):
            s0 = _vzero()
            s1 = _vzero()
            s2 = _vzero()
            s3 = _vzero()
            for r in range(n):
                b = r * m + p
                s0 = _vadd(s0, _vload(g, b))
                s1 = _vadd(s1, _vload(g, b + 8))
                s2 = _vadd(s2, _vload(g, b + 16))
                s3 = _vadd(s3, _vload(g, b + 24))
            _vstore(out, p, s0)
            _vstore(out, p + 8, s1)
            _vstore(out, p + 16, s2)
            _vstore(out, p + 24, s3)

    @_jit
    def _matmul_tn(G, H, C):
        """C = Gᵀ H (G: n × o, H: n × m, C: o × m), the weight gradient, over blocks of 128 rows
        that stay in the L1 cache while every 2 × 32 block of C passes over them."""
        if not _panels_fit(G, H, C):
            np.dot(G.T, H, C)
            return
        n, o = G.shape
        m = H.shape[1]
        if n == 0:
            C[:] = 0.0
            return
        for r0 in range(0, n, 128):
            r1 = min(n, r0 + 128)
            for p in range(0, m, 32):
                j = 0
                while j < o:
                    two = j + 1 < o
                    j1 = j + 1 if two else j
                    o0 = j * m + p
                    o1 = j1 * m + p
                    if r0 == 0:
                        c00 = _vzero()
                        c01 = _vzero()
                        c02 = _vzero()
                        c03 = _vzero()
                        c10 = _vzero()
                        c11 = _vzero()
                        c12 = _vzero()
                        c13 = _vzero()
                    else:
                        c00 = _vload(C, o0)
                        c01 = _vload(C, o0 + 8)
                        c02 = _vload(C, o0 + 16)
                        c03 = _vload(C, o0 + 24)
                        c10 = _vload(C, o1)
                        c11 = _vload(C, o1 + 8)
                        c12 = _vload(C, o1 + 16)
                        c13 = _vload(C, o1 + 24)
                    for r in range(r0, r1):
                        hb = r * m + p
                        h0 = _vload(H, hb)
                        h1 = _vload(H, hb + 8)
                        h2 = _vload(H, hb + 16)
                        h3 = _vload(H, hb + 24)
                        g0 = _vsplat(_sload(G, r * o + j))
                        g1 = _vsplat(_sload(G, r * o + j1))
                        c00 = _vfma(g0, h0, c00)
                        c01 = _vfma(g0, h1, c01)
                        c02 = _vfma(g0, h2, c02)
                        c03 = _vfma(g0, h3, c03)
                        c10 = _vfma(g1, h0, c10)
                        c11 = _vfma(g1, h1, c11)
                        c12 = _vfma(g1, h2, c12)
                        c13 = _vfma(g1, h3, c13)
                    _vstore(C, o0, c00)
                    _vstore(C, o0 + 8, c01)
                    _vstore(C, o0 + 16, c02)
                    _vstore(C, o0 + 24, c03)
                    if two:
                        _vstore(C, o1, c10)
                        _vstore(C, o1 + 8, c11)
                        _vstore(C, o1 + 16, c12)
                        _vstore(C, o1 + 24, c13)
                    j += 2

    @_jit
    def _softplus(x):
        # torch's softplus (β = 1, threshold 20)
        if x > 20.0:
            return x
        return _f32(math.log1p(math.exp(x)))

    @_jit
    def _sigmoid(x):
        return _f32(1.0 / (1.0 + math.exp(-x)))

    @_jit
    def _act(code, z):
        if code == RELU:
            return z if z > 0 else _f32(0.0)
        if code == LEAKY_RELU:
            return z if z > 0 else _LEAKY * z
        if code == SOFTPLUS:
            return _softplus(z)
        u = min(max(z / _EPS_SMOOTH, _f32(0.0)), _f32(1.0))
        if z >= _EPS_SMOOTH:
            return z - _f32(0.5) * _EPS_SMOOTH
        return _EPS_SMOOTH * (u * u * u - _f32(0.5) * u * u * u * u)

    @_jit
    def _act_prime(code, z):
        if code == RELU:
            return _f32(1.0) if z > 0 else _f32(0.0)
        if code == LEAKY_RELU:
            return _f32(1.0) if z > 0 else _LEAKY
        if code == SOFTPLUS:
            return _sigmoid(z)
        u = min(max(z / _EPS_SMOOTH, _f32(0.0)), _f32(1.0))
        return u * u * (_f32(3.0) - _f32(2.0) * u)

    @_jit
    def _views(widths, Z, ws):
        """The layer buffers of a forward pass at the rows of Z, as views into the workspace ``ws``:
        (V, pre-activations, layer inputs with Z first). Rebuilding them costs no arithmetic, so a
        lane's backward pass can resume from its forward pass after a barrier."""
        pre_buf, post_buf, _, _, _, v_buf = ws
        D = widths.shape[0] - 1
        n = Z.shape[0]
        pres = List()
        posts = List()
        posts.append(Z)
        off = 0
        for layer in range(D - 1):
            o = widths[layer + 1]
            pres.append(pre_buf[off : off + n * o].reshape((n, o)))
            posts.append(post_buf[off : off + n * o].reshape((n, o)))
            off += n * o
        return v_buf[:n], pres, posts

    @_jit
    def _forward(theta, widths, w_off, b_off, acts, Z, ws):
        """φ's network output V at the rows of Z (n, d), with the pre-activations and the layer
        inputs (Z first) kept for the backward pass. Products go to the register kernels, which
        add the bias and apply ReLU as they store (BLAS for widths they do not fit, then bias and
        activation in one pass). Outputs live in the workspace ``ws``."""
        V, pres, posts = _views(widths, Z, ws)
        D = widths.shape[0] - 1
        n = Z.shape[0]
        h = Z
        for layer in range(D - 1):
            i = widths[layer]
            o = widths[layer + 1]
            W = theta[w_off[layer] : w_off[layer] + o * i].reshape((o, i))
            b = theta[b_off[layer] : b_off[layer] + o]
            z = pres[layer]
            a = posts[layer + 1]
            WT = np.ascontiguousarray(W.T)
            code = acts[layer]
            if code == RELU and _matmul_bias_relu(h, WT, z, b, a):
                h = a
                continue
            if _panels_fit(h, WT, z) or i > SMALL_INPUT:
                _matmul(h, WT, z)
            else:  # a few input columns (2-D data) and odd widths: one pass beats a BLAS call
                for r in range(n):
                    for j in range(o):
                        z[r, j] = 0.0
                    for c in range(i):
                        x = h[r, c]
                        for j in range(o):
                            z[r, j] += x * WT[c, j]
            # 2-D indexing and selects rather than row views and conditional stores: these loops
            # vectorize (row views and `if …: x = 0` were 30× slower at M = N = 4096)
            if code == RELU:
                for r in range(n):
                    for j in range(o):
                        v = z[r, j] + b[j]
                        z[r, j] = v
                        a[r, j] = v if v > 0 else _f32(0.0)
            else:
                for r in range(n):
                    for j in range(o):
                        v = z[r, j] + b[j]
                        z[r, j] = v
                        a[r, j] = _act(code, v)
            h = a
        last = D - 1
        w = theta[w_off[last] : w_off[last] + widths[last]]
        np.dot(h, w, V)
        b_last = theta[b_off[last]]
        for r in range(n):
            V[r] += b_last
        return V, pres, posts

    @_jit
    def _backward(theta, grad, widths, w_off, b_off, acts, pres, posts, dV, n, weights, inputs, ws):
        """Back-propagate dV (∂loss/∂V on the first n rows): parameter gradients into ``grad`` if
        ``weights``; returns ∂loss/∂x (n, d) if ``inputs`` (an empty array otherwise)."""
        _, _, g_buf, gn_buf, gin_buf, _ = ws
        D = widths.shape[0] - 1
        d = widths[0]
        last = D - 1
        i = widths[last]
        w = theta[w_off[last] : w_off[last] + i]
        dv = dV[:n]
        if weights:
            _matmul_tn(
                dv.reshape((n, 1)), posts[last][:n], grad[w_off[last] : w_off[last] + i].reshape((1, i))
            )
            sb = 0.0
            for r in range(n):
                sb += dv[r]
            grad[b_off[last]] = sb
        none = gin_buf[:0].reshape((0, d))
        if last == 0:
            if not inputs:
                return none
            gin = gin_buf[: n * d].reshape((n, d))
            for r in range(n):
                for c in range(d):
                    gin[r, c] = dv[r] * w[c]
            return gin
        code = acts[last - 1]
        z = pres[last - 1]
        g = g_buf[: n * i].reshape((n, i))
        if code == RELU:
            _relu_outer(g, dv, w, z)
        else:
            for r in range(n):
                for c in range(i):
                    g[r, c] = dv[r] * w[c] * _act_prime(code, z[r, c])
        for layer in range(D - 2, -1, -1):
            i = widths[layer]
            o = widths[layer + 1]
            W = theta[w_off[layer] : w_off[layer] + o * i].reshape((o, i))
            if weights:
                h = posts[layer]
                dW = grad[w_off[layer] : w_off[layer] + o * i].reshape((o, i))
                if i <= SMALL_INPUT:  # (Hᵀ g)ᵀ: o = 32k columns suit the registers, i = 2 does not
                    dWT = np.empty((i, o), dtype=np.float32)
                    _matmul_tn(h[:n], g, dWT)
                    dW[:, :] = dWT.T
                else:
                    _matmul_tn(g, h[:n], dW)
                _column_sums(g, grad[b_off[layer] : b_off[layer] + o])
            if layer == 0:
                if not inputs:
                    return none
                gin = gin_buf[: n * d].reshape((n, d))
                if i <= SMALL_INPUT:
                    WT = np.ascontiguousarray(W.T)
                    for r in range(n):
                        for c in range(i):
                            acc = _f32(0.0)
                            for j in range(o):
                                acc += g[r, j] * WT[c, j]
                            gin[r, c] = acc
                else:
                    _matmul(g, W, gin)
                return gin
            gn = gn_buf[: n * i].reshape((n, i))
            code = acts[layer - 1]
            z = pres[layer - 1]
            if code == RELU:
                _matmul_relu(g, W, gn, z)
            else:
                _matmul(g, W, gn)
                for r in range(n):
                    for c in range(i):
                        gn[r, c] *= _act_prime(code, z[r, c])
            g_buf, gn_buf = gn_buf, g_buf
            g = gn
        return none

    @_jit
    def _workspace(widths, n):
        """Buffers for n rows, allocated once per call: page-faulting fresh megabytes on every
        product would cost more than the arithmetic at M = N = 4096."""
        D = widths.shape[0] - 1
        hidden = 0
        widest = 1
        for layer in range(1, D):
            hidden += widths[layer]
            widest = max(widest, widths[layer])
        f32 = np.float32
        return (
            np.empty(n * max(hidden, 1), dtype=f32),
            np.empty(n * max(hidden, 1), dtype=f32),
            np.empty(n * widest, dtype=f32),
            np.empty(n * widest, dtype=f32),
            np.empty(n * widths[0], dtype=f32),
            np.empty(n, dtype=f32),
        )

    @_jit
    def _out_map(code, v):
        """(φ, g'(V)) of the output map: identity for KL/α, Y_MAX - softplus(-V) otherwise."""
        if code == REVERSE_KL:
            return -_softplus(-v), _sigmoid(-v)
        if code == JS:
            return _f32(_HALF_LOG2) - _softplus(-v), _sigmoid(-v)
        return v, _f32(1.0)

    @_jit
    def _empty_stats(st):
        """A lane's statistics before any row: sums 0, maxima -∞, finite."""
        st[:] = 0.0
        st[S_GAUGE] = -np.inf
        st[S_VMAX] = -np.inf
        st[S_FINITE] = 1.0

    @_jit
    def _objective_part(code, alpha, nu, V, p0, ml, q0, nl, m, nq, dV, st):
        """One lane's share of J(φ, ν) (eq. (1.4)): outputs V at its P rows [p0, p0+ml) and Q rows
        [q0, q0+nl) of a member with m and nq rows in all. Writes the lane's partial sums into
        ``st`` (see ``_combined``) and dV = ∂(-J)/∂V on its rows, except on the Q rows of the
        Donsker–Varadhan forms, which normalise over all of Q (``_dv_global`` writes those)."""
        sp = 0.0
        if code == REVERSE_KL or code == JS:
            for r in range(p0, p0 + ml):
                phi, slope = _out_map(code, V[r])
                sp += phi
                dV[r] = -slope / _f32(m)
        else:
            for r in range(p0, p0 + ml):
                sp += V[r]
                dV[r] = _f32(-1.0 / m)
        st[S_SP] = sp
        st[S_SF] = 0.0
        st[S_SR] = 0.0
        st[S_VMAX] = -np.inf
        st[S_SEXP] = 0.0
        if code == KL_DV or code == KL_DV_NAIVE:
            vmax = -np.inf
            for r in range(q0, q0 + nl):
                vmax = max(vmax, float(V[r]))
            s = 0.0
            if code == KL_DV:
                for r in range(q0, q0 + nl):
                    s += math.exp(V[r] - vmax)
            else:
                for r in range(q0, q0 + nl):
                    s += _f32(math.exp(V[r]))  # float32 e^φ: +∞ beyond φ ≈ 88.7, as eagerly
            st[S_GAUGE] = vmax
            st[S_VMAX] = vmax
            st[S_SEXP] = s
            return
        gauge = -np.inf
        sf = 0.0
        sr = 0.0
        a = alpha
        for r in range(q0, q0 + nl):
            if code == KL_LT or code == ALPHA:
                y = _f32(V[r] - nu)
                slope = _f32(1.0)
            else:
                y, slope = _out_map(code, V[r])
            gauge = max(gauge, float(y))
            if code == KL_LT:
                fs = _f32(math.exp(y - 1.0))
                fp = fs
            elif code == ALPHA:
                base = (a - 1.0) * max(float(y), 0.0)
                fs = _f32(base ** (a / (a - 1.0)) / a + 1.0 / (a * (a - 1.0)))
                fp = _f32(base ** (1.0 / (a - 1.0)))
            elif code == REVERSE_KL:
                if y < 0:
                    fs = _f32(-1.0 - math.log(-y))
                    fp = _f32(-1.0 / y)
                else:
                    fs = _f32(np.inf)
                    fp = _f32(np.inf)
            else:
                e = math.exp(2.0 * y)
                inside = _f32(2.0 - e)
                if inside > 0:
                    fs = _f32(-0.5 * math.log(inside))
                    fp = _f32(e / inside)
                else:
                    fs = _f32(np.inf)
                    fp = _f32(np.inf)
            sf += fs
            sr += fp
            dV[r] = fp * slope / _f32(nq)
        st[S_SF] = sf
        st[S_SR] = sr
        st[S_GAUGE] = gauge

    @_jit
    def _combined(code, nu, parts, m, nq):
        """J(φ, ν) of eq. (1.4), ∂J/∂ν, the overflow gauge (max of f*'s argument) and, for the
        Donsker–Varadhan forms, the normaliser (max, Σ e^{φ-max}; naive: Σ e^φ) from the lanes'
        partial sums ``parts`` (LANES, NSTAT), always added in lane order: every thread gets the
        same numbers, whichever thread computed which lane."""
        sp = 0.0
        sf = 0.0
        sr = 0.0
        gauge = -np.inf
        vmax = -np.inf
        total = 0.0
        for lane in range(LANES):
            sp += parts[lane, S_SP]
            sf += parts[lane, S_SF]
            sr += parts[lane, S_SR]
            gauge = max(gauge, parts[lane, S_GAUGE])
            vmax = max(vmax, parts[lane, S_VMAX])
            total += parts[lane, S_SEXP]
        mean_p = sp / m
        if code == KL_DV:
            s = 0.0
            for lane in range(LANES):
                if parts[lane, S_SEXP] != 0.0:
                    s += parts[lane, S_SEXP] * math.exp(parts[lane, S_VMAX] - vmax)
            return mean_p - (vmax + math.log(s) - math.log(nq)), 0.0, gauge, vmax, s
        if code == KL_DV_NAIVE:
            total32 = _f32(total)
            return mean_p - math.log(total32 / nq), 0.0, gauge, vmax, float(total32)
        if code == KL_LT or code == ALPHA:
            return mean_p - nu - sf / nq, sr / nq - 1.0, gauge, vmax, 0.0
        return mean_p - sf / nq, 0.0, gauge, vmax, 0.0

    @_jit
    def _dv_global(code, V, q0, nl, vmax, s, dV):
        """dV on a lane's Q rows for the Donsker–Varadhan forms, once ``_combined`` has the
        normaliser over all of Q: e^{φ-max}/Σ (log-sum-exp) or float32 e^φ/Σ e^φ (naive)."""
        if code == KL_DV:
            for r in range(q0, q0 + nl):
                dV[r] = _f32(math.exp(V[r] - vmax) / s)
        else:
            s32 = _f32(s)
            for r in range(q0, q0 + nl):
                dV[r] = _f32(math.exp(V[r])) / s32

    @_jit
    def _objective(code, alpha, nu, V, p0, m, q0, nq, dV):
        """J(φ, ν) of eq. (1.4) from outputs V at P rows [p0, p0+m) and Q rows [q0, q0+nq) as one
        lane; writes dV = ∂(-J)/∂V on those rows; returns (J, ∂J/∂ν, the overflow gauge)."""
        parts = np.empty((LANES, NSTAT))
        for lane in range(LANES):
            _empty_stats(parts[lane])
        _objective_part(code, alpha, nu, V, p0, m, q0, nq, m, nq, dV, parts[0])
        value, d_nu, gauge, vmax, s = _combined(code, nu, parts, m, nq)
        if code == KL_DV or code == KL_DV_NAIVE:
            _dv_global(code, V, q0, nq, vmax, s, dV)
        return value, d_nu, gauge

    @_jit
    def _adam(theta, grad, m, v, k, tstep, lr, beta1, beta2, eps):
        """One Adam step (torch's formula: bias-corrected moments, ε added after the square root)."""
        tstep[k] += 1.0
        step = float(tstep[k])
        bc1 = 1.0 - beta1**step
        bc2_sqrt = math.sqrt(1.0 - beta2**step)
        step_size = _f32(lr / bc1)
        b1 = _f32(beta1)
        b2 = _f32(beta2)
        c2 = _f32(bc2_sqrt)
        e = _f32(eps)
        mk = m[k]
        vk = v[k]
        for p in range(theta.shape[0]):
            g = grad[p]
            mk[p] = b1 * mk[p] + (_f32(1.0) - b1) * g
            vk[p] = b2 * vk[p] + (_f32(1.0) - b2) * g * g
            theta[p] -= step_size * mk[p] / (math.sqrt(vk[p]) / c2 + e)

    @_jit
    def _sigma(theta, widths, w_off, vec, v_off, layer, iterations, use_power, refresh):
        """σ_max(W_layer): exact for a row or column; else warm-started power iteration on ``vec``."""
        i = widths[layer]
        o = widths[layer + 1]
        W = theta[w_off[layer] : w_off[layer] + o * i]
        if not use_power or min(o, i) == 1:
            s = 0.0
            for p in range(o * i):
                s += W[p] * W[p]
            return math.sqrt(s)
        x = vec[v_off[layer] : v_off[layer] + i].copy()
        u = np.empty(o, dtype=np.float32)
        sigma = 0.0
        for _ in range(iterations):
            s = 0.0
            for j in range(o):
                acc = _f32(0.0)
                for c in range(i):
                    acc += W[j * i + c] * x[c]
                u[j] = acc
                s += acc * acc
            un = _f32(max(math.sqrt(s), 1e-30))
            for j in range(o):
                u[j] /= un
            for c in range(i):
                x[c] = 0.0
            for j in range(o):
                uj = u[j]
                for c in range(i):
                    x[c] += W[j * i + c] * uj
            s = 0.0
            for c in range(i):
                s += x[c] * x[c]
            sigma = _f32(math.sqrt(s))
            xn = _f32(max(sigma, 1e-30))
            for c in range(i):
                x[c] /= xn
        if refresh:
            vec[v_off[layer] : v_off[layer] + i] = x
        return sigma

    @_jit
    def _project(theta, widths, w_off, pvec, v_off, mode, scale, iterations):
        """W_l ← L^{1/D} W_l / ‖W_l‖ (Algorithm 3.1, line 9) for one member."""
        if mode == LIP_NONE:
            return
        D = widths.shape[0] - 1
        for layer in range(D):
            sigma = _sigma(theta, widths, w_off, pvec, v_off, layer, iterations, mode == LIP_SPECTRAL, True)
            factor = _f32(scale / max(_f32(sigma), _f32(1e-30)))
            o = widths[layer + 1]
            i = widths[layer]
            for p in range(w_off[layer], w_off[layer] + o * i):
                theta[p] *= factor

    @_jit
    def _lipschitz_bound(theta, widths, w_off, dvec, v_off):
        """∏_l σ_max(W_l) by one warm-started power iteration on the diagnostic vectors."""
        bound = 1.0
        for layer in range(widths.shape[0] - 1):
            bound *= _f32(_sigma(theta, widths, w_off, dvec, v_off, layer, 1, True, True))
        return _f32(bound)

    @_jit
    def _lane(n, lane):
        """Rows [start, stop) of ``lane`` among a member's n rows: every member's particles,
        generated points and target split into LANES fixed parts, whatever the thread count."""
        return (n * lane) // LANES, (n * (lane + 1)) // LANES

    @_jit
    def _barrier(par):
        """Wait until every thread working on this member group has arrived (threads > 1)."""
        _, nthreads, sync, count = par
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

    @_jit
    def _lane_workspace(ws, w):
        """Row ``w`` of each of a thread's workspace buffers: one lane's ``_workspace``."""
        return (ws[0][w], ws[1][w], ws[2][w], ws[3][w], ws[4][w], ws[5][w])

    @_jit
    def _train(k, pts, X, theta, grad, adam, net, pvec, member, shared, lanes, par):
        """m_max Adam steps on (W, ν) for member k at its particles ``pts`` (M, d) and target X[k]
        (Algorithm 3.1, lines 6–10).

        Each of this thread's lanes runs the forward and backward pass on its rows; after a barrier
        every thread adds the lanes' gradients in lane order and takes the same Adam step and
        projection on its own copy of the parameters (row k of ``adam``'s arrays), so one
        barrier per inner step is all the synchronisation. ``adam`` = (m, v, steps, β₁, β₂, ε);
        ``net`` = (widths, w_off, b_off, v_off, activations); ``member`` = (objective code, α, lr,
        Lipschitz mode, L^{1/D}, m_max, power iterations); ``shared`` = the group's (gradient,
        statistics) partials, double-buffered by barrier parity; ``lanes`` = this thread's
        (rows, dV, workspace) per lane it runs."""
        mom, vel, tstep, beta1, beta2, eps = adam
        widths, w_off, b_off, v_off, acts = net
        code, alpha, lr, lip, scale, inner, power_its = member
        gpart, spart = shared
        Zt, dVs, ws = lanes
        rank, nthreads, _, count = par
        M = pts.shape[0]
        N = X.shape[1]
        P = theta.shape[0]
        trained_nu = code == KL_LT or code == ALPHA
        global_q = code == KL_DV or code == KL_DV_NAIVE
        for lane in range(rank, LANES, nthreads):
            slot = lane // nthreads
            p0, p1 = _lane(M, lane)
            q0, q1 = _lane(N, lane)
            Zt[slot, : p1 - p0] = pts[p0:p1]
            Zt[slot, p1 - p0 : p1 - p0 + q1 - q0] = X[k, q0:q1]
        for _ in range(inner):
            b = count[0] % 2
            nu = theta[P - 1]
            for lane in range(rank, LANES, nthreads):
                slot = lane // nthreads
                p0, p1 = _lane(M, lane)
                q0, q1 = _lane(N, lane)
                ml = p1 - p0
                n = ml + q1 - q0
                g = gpart[b, lane]
                if n == 0:
                    g[:] = 0.0
                    _empty_stats(spart[b, lane])
                    continue
                w = slot if global_q else 0  # one workspace, unless kept across the DV barrier
                wsl = _lane_workspace(ws, w)
                V, pres, posts = _forward(theta, widths, w_off, b_off, acts, Zt[slot, :n], wsl)
                _objective_part(code, alpha, nu, V, 0, ml, ml, n - ml, M, N, dVs[slot], spart[b, lane])
                if not global_q:
                    _backward(
                        theta, g, widths, w_off, b_off, acts, pres, posts, dVs[slot], n, True, False, wsl
                    )
            if global_q:  # the normaliser over all of Q first, then each lane's backward pass
                _barrier(par)
                _, _, _, vmax, s = _combined(code, nu, spart[b], M, N)
                b = count[0] % 2
                for lane in range(rank, LANES, nthreads):
                    slot = lane // nthreads
                    p0, p1 = _lane(M, lane)
                    q0, q1 = _lane(N, lane)
                    ml = p1 - p0
                    n = ml + q1 - q0
                    g = gpart[b, lane]
                    if n == 0:
                        g[:] = 0.0
                        continue
                    wsl = _lane_workspace(ws, slot)
                    V, pres, posts = _views(widths, Zt[slot, :n], wsl)
                    _dv_global(code, V, ml, n - ml, vmax, s, dVs[slot])
                    _backward(
                        theta, g, widths, w_off, b_off, acts, pres, posts, dVs[slot], n, True, False, wsl
                    )
            _barrier(par)
            for p in range(P):
                acc = gpart[b, 0, p]
                for lane in range(1, LANES):
                    acc += gpart[b, lane, p]
                grad[p] = acc
            if trained_nu:
                _, d_nu, _, _, _ = _combined(code, nu, spart[b], M, N)
                grad[P - 1] = _f32(-d_nu)
            else:
                grad[P - 1] = _f32(0.0)
            _adam(theta, grad, mom, vel, k, tstep, lr, beta1, beta2, eps)
            _project(theta, widths, w_off, pvec, v_off, lip, scale, power_its)

    @_jit
    def _field(code, theta, grad, widths, w_off, b_off, acts, V, pres, posts, n, dV, ws):
        """∇φ at the first n rows of a forward pass (V, pres, posts); φ = g(V) for the output map g."""
        for r in range(n):
            dV[r] = _out_map(code, V[r])[1]
        return _backward(theta, grad, widths, w_off, b_off, acts, pres, posts, dV, n, False, True, ws)

    @_jit
    def _optimal_nu(code, alpha, V, q0, nq):
        """ν* with E_Q[(f*)'(φ - ν*)] = 1 (``divergences.optimal_nu``): log E_Q[e^φ] - 1 for KL,
        60 bisection steps for α."""
        vmax = -np.inf
        vmin = np.inf
        for r in range(q0, q0 + nq):
            vmax = max(vmax, float(V[r]))
            vmin = min(vmin, float(V[r]))
        if code == KL_LT:
            s = 0.0
            for r in range(q0, q0 + nq):
                s += math.exp(V[r] - vmax)
            return vmax + math.log(s) - math.log(nq) - 1.0
        a = alpha
        c = 1.0 / (a - 1.0)
        lo = vmin - c
        hi = vmax - c
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            s = 0.0
            for r in range(q0, q0 + nq):
                s += ((a - 1.0) * max(V[r] - mid, 0.0)) ** (1.0 / (a - 1.0))
            if s / nq > 1.0:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    @_jit
    def prepare_members(
        X, theta, pvec, dvec, widths, w_off, b_off, v_off, acts, codes, alpha, scale, lip, power_its, warm_up
    ):
        """Algorithm 3.1 lines 3–4, member by member (so a member starts alike in any batch): settle
        the power-iteration vectors (``warm_up`` iterations), copy them for the diagnostics, project
        W, and start ν at its minimiser for φ_0 on the target."""
        K = theta.shape[0]
        P = theta.shape[1]
        D = widths.shape[0] - 1
        N = X.shape[1]
        ws = _workspace(widths, N)
        for k in range(K):
            for layer in range(D):
                _sigma(theta[k], widths, w_off, pvec[k], v_off, layer, warm_up, True, True)
            dvec[k, :] = pvec[k]
            _project(theta[k], widths, w_off, pvec[k], v_off, lip[k], scale[k], power_its)
            if codes[k] == KL_LT or codes[k] == ALPHA:
                V, _, _ = _forward(theta[k], widths, w_off, b_off, acts, X[k], ws)
                theta[k, P - 1] = _optimal_nu(codes[k], alpha[k], V, 0, N)

    @_jit
    def project_members(theta, pvec, widths, w_off, v_off, lip, scale, power_its):
        """The projection of Algorithm 3.1 line 9 for every member (after a live reconfigure)."""
        for k in range(theta.shape[0]):
            _project(theta[k], widths, w_off, pvec[k], v_off, lip[k], scale[k], power_its)

    @_jit
    def run_members(
        members,
        n_steps,
        n0,
        record_every,
        Y,
        Gen,
        X,
        theta,
        mom,
        vel,
        tstep,
        pvec,
        dvec,
        widths,
        w_off,
        b_off,
        v_off,
        acts,
        codes,
        alpha,
        scale,
        lip,
        lr,
        dt,
        heun,
        steps_limit,
        inner,
        power_its,
        reset_adam,
        beta1,
        beta2,
        eps,
        alive,
        t,
        runaway,
        dead_step,
        dead_time,
        dead_info,
        rec,
        rank,
        nthreads,
        sync,
        gpart,
        spart,
        epart,
        scratch,
    ):
        """Advance ``members`` by up to ``n_steps`` particle steps from global step n0, as thread
        ``rank`` of ``nthreads`` that share this member group (see ``group_buffers``).

        Per step and member: train φ (with the Adam reset if asked), evaluate (φ, ∇φ) at particles,
        generated points and target, move (Euler, or Heun with φ retrained at the predictor), test
        for non-finite values and runaways, and record into rec[step, field, member] every
        ``record_every`` steps (NaN where a member is inactive). A member's rows are split into
        LANES fixed lanes; each thread runs the lanes ``rank``, ``rank + nthreads``, …, and the
        lanes' partial sums are combined in lane order, so the result does not depend on the
        thread count. Rank 0 owns the shared state (parameters, time, status, records); other
        ranks step private copies of the parameters identically. ``scratch`` is this thread's
        working memory (``thread_scratch``), kept by the caller between calls: fresh megabytes
        cost more in page faults than a step's arithmetic at M = N = 4096. Returns the steps taken."""
        M, d = Y.shape[1], Y.shape[2]
        Gn = Gen.shape[1]
        N = X.shape[1]
        P = theta.shape[1]
        count = np.zeros(1, dtype=np.int64)
        par = (rank, nthreads, sync, count)
        if rank == 0:
            TH, MO, VE, TS, PV = theta, mom, vel, tstep, pvec
        else:
            TH, MO, VE, TS, PV = theta.copy(), mom.copy(), vel.copy(), tstep.copy(), pvec.copy()
        live = alive.copy()
        _barrier(par)  # every copy is taken before rank 0 changes anything
        net = (widths, w_off, b_off, v_off, acts)
        shared = (gpart, spart)
        Zs, Zt, dVs, ws0, ws1, ws2, ws3, ws4, ws5, grad, v1, y_new = scratch
        ws = (ws0, ws1, ws2, ws3, ws4, ws5)
        lanes = (Zt, dVs, ws)
        evals = 0
        taken = 0
        for s in range(n_steps):
            n = n0 + s
            any_active = False
            for k in members:
                if live[k] and n < steps_limit[k]:
                    any_active = True
            if not any_active:
                break
            record = n % record_every == 0
            for k in members:
                if record and rank == 0:
                    for fld in range(6):
                        rec[s, fld, k] = np.nan
                if not (live[k] and n < steps_limit[k]):
                    continue
                theta_k = TH[k]
                code = codes[k]
                member = (code, alpha[k], lr[k], lip[k], scale[k], inner, power_its)
                if reset_adam:
                    MO[k, :] = 0.0
                    VE[k, :] = 0.0
                    TS[k] = 0.0
                adam = (MO, VE, TS, beta1, beta2, eps)
                # stage 0: train at Y, then (φ, ∇φ) at each lane's [Y; X] rows (the rows training
                # used) and, in a pass of their own, ∇φ at its generated points: a product's rounding
                # may depend on a row's place in it (BLAS edge kernels), so the trained rows never
                # share a pass with generated ones, as eagerly (flow.GPAFlow._velocity)
                _train(k, Y[k], X, theta_k, grad, adam, net, PV[k], member, shared, lanes, par)
                h = dt[k]
                nu = theta_k[P - 1]
                e = evals % 2
                for lane in range(rank, LANES, nthreads):
                    slot = lane // nthreads
                    p0, p1 = _lane(M, lane)
                    g0, g1 = _lane(Gn, lane)
                    q0, q1 = _lane(N, lane)
                    ml = p1 - p0
                    nl = q1 - q0
                    st = epart[e, lane]
                    _empty_stats(st)
                    wsl = _lane_workspace(ws, 0)
                    kinetic = 0.0
                    speed = 0.0
                    if ml + nl > 0:
                        Z = Zs[: ml + nl]
                        Z[:ml] = Y[k, p0:p1]
                        Z[ml:] = X[k, q0:q1]
                        V, pres, posts = _forward(theta_k, widths, w_off, b_off, acts, Z, wsl)
                        _objective_part(code, alpha[k], nu, V, 0, ml, ml, nl, M, N, dVs[slot], st)
                        G_in = _field(code, theta_k, grad, widths, w_off, b_off, acts, V, pres, posts, ml,
                                      dVs[slot], wsl)  # fmt: skip
                        for r in range(ml):
                            sq = 0.0
                            for c in range(d):
                                v1[p0 + r, c] = -G_in[r, c]
                                sq += G_in[r, c] * G_in[r, c]
                                y_new[p0 + r, c] = Z[r, c] + h * v1[p0 + r, c]
                            kinetic += sq
                            speed = max(speed, sq)
                    if g1 > g0:
                        Z = Zs[: g1 - g0]
                        Z[:] = Gen[k, g0:g1]
                        V, pres, posts = _forward(theta_k, widths, w_off, b_off, acts, Z, wsl)
                        G_in = _field(code, theta_k, grad, widths, w_off, b_off, acts, V, pres, posts,
                                      g1 - g0, dVs[slot], wsl)  # fmt: skip
                        for r in range(g1 - g0):
                            for c in range(d):
                                v1[M + g0 + r, c] = -G_in[r, c]
                                y_new[M + g0 + r, c] = Z[r, c] + h * v1[M + g0 + r, c]
                    st[S_KIN] = kinetic
                    st[S_SPEED] = speed
                if heun[k]:
                    # Remark 3.2: retrain φ at the predictor, average the two velocities
                    _train(k, y_new[:M], X, theta_k, grad, adam, net, PV[k], member, shared, lanes, par)
                    half = _f32(0.5) * h
                    for lane in range(rank, LANES, nthreads):
                        slot = lane // nthreads
                        p0, p1 = _lane(M, lane)
                        g0, g1 = _lane(Gn, lane)
                        wsl = _lane_workspace(ws, 0)
                        # the lane's particles, then its generated points, each in a pass of its own
                        for first, stop in ((p0, p1), (M + g0, M + g1)):
                            nm = stop - first
                            if nm == 0:
                                continue
                            Z = Zs[:nm]
                            Z[:] = y_new[first:stop]
                            V, pres, posts = _forward(theta_k, widths, w_off, b_off, acts, Z, wsl)
                            G_in = _field(code, theta_k, grad, widths, w_off, b_off, acts, V, pres, posts,
                                          nm, dVs[slot], wsl)  # fmt: skip
                            for r in range(nm):
                                row = first + r
                                y0 = Y[k, row] if row < M else Gen[k, row - M]
                                for c in range(d):
                                    y_new[row, c] = y0[c] + half * (v1[row, c] - G_in[r, c])
                for lane in range(rank, LANES, nthreads):
                    p0, p1 = _lane(M, lane)
                    g0, g1 = _lane(Gn, lane)
                    finite = True
                    extent = 0.0
                    for row in range(p0, p1 + g1 - g0):
                        rr = row if row < p1 else M + g0 + row - p1
                        for c in range(d):
                            x = y_new[rr, c]
                            if not math.isfinite(x):
                                finite = False
                            extent = max(extent, abs(float(x)))
                    epart[e, lane, S_FINITE] = 1.0 if finite else 0.0
                    epart[e, lane, S_EXTENT] = extent
                _barrier(par)
                evals += 1
                value, _, gauge, _, _ = _combined(code, nu, epart[e], M, N)
                kinetic = 0.0
                speed = 0.0
                finite = math.isfinite(value)
                extent = 0.0
                for lane in range(LANES):
                    kinetic += epart[e, lane, S_KIN]
                    speed = max(speed, epart[e, lane, S_SPEED])
                    finite = finite and epart[e, lane, S_FINITE] == 1.0
                    extent = max(extent, epart[e, lane, S_EXTENT])
                kinetic32 = _f32(kinetic / M)
                finite = finite and math.isfinite(kinetic32)
                healthy = finite and not extent > runaway[k]
                if record and rank == 0:
                    rec[s, REC_TIME, k] = t[k]
                    rec[s, REC_KINETIC, k] = kinetic32
                    rec[s, REC_DIVERGENCE, k] = _f32(value)
                    rec[s, REC_SPEED, k] = _f32(math.sqrt(speed))
                    rec[s, REC_BOUND, k] = _lipschitz_bound(theta_k, widths, w_off, dvec[k], v_off)
                    rec[s, REC_GAUGE, k] = _f32(gauge)
                if healthy:
                    for lane in range(rank, LANES, nthreads):
                        p0, p1 = _lane(M, lane)
                        g0, g1 = _lane(Gn, lane)
                        Y[k, p0:p1] = y_new[p0:p1]
                        Gen[k, g0:g1] = y_new[M + g0 : M + g1]
                    if rank == 0:
                        t[k] += float(h)
                else:
                    live[k] = False
                    if rank == 0:
                        alive[k] = False
                        dead_step[k] = n
                        dead_time[k] = t[k]
                        dead_info[k, 0] = 1.0 if finite else 0.0
                        dead_info[k, 1] = gauge
            taken += 1
        return taken


@dataclass
class _CompileState:
    lock: threading.Lock
    thread: threading.Thread | None = None
    ready: bool = False
    error: str | None = None
    seconds: float | None = None


_STATE = _CompileState(threading.Lock())


def available() -> bool:
    """Whether this Python can have the compiled path at all (Numba importable)."""
    return numba is not None


def ready() -> bool:
    """Whether the kernels are compiled (or loaded from Numba's on-disk cache) in this process."""
    return _STATE.ready


def compile_error() -> str | None:
    return _STATE.error


def compile_seconds() -> float | None:
    """Seconds the compile (or cache load) took in this process, once done."""
    return _STATE.seconds


def group_buffers(n_params: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What the threads running one member group share: a barrier counter and a failure flag, the
    lanes' gradient partials and the lanes' training and evaluation statistics (two of each,
    alternating by barrier parity so that no thread overwrites what a partner is still reading)."""
    return (
        np.zeros(2, dtype=np.int64),
        np.empty((2, LANES, n_params), dtype=np.float32),
        np.empty((2, LANES, NSTAT)),
        np.empty((2, LANES, NSTAT)),
    )


def thread_scratch(
    widths: np.ndarray, M: int, Gn: int, N: int, P: int, rank: int, nthreads: int
) -> tuple[np.ndarray, ...]:
    """Working memory for thread ``rank`` of ``nthreads`` running members of this shape: its lanes'
    rows and layer buffers (as ``_workspace``, one row per lane it runs), the gradient, and the
    velocities and new positions of the moving points."""
    d = int(widths[0])
    slots = (LANES - rank + nthreads - 1) // nthreads
    most = sum(-(-n // LANES) for n in (M, Gn, N))  # the largest lane's rows
    sizes = [buf.size for buf in _workspace(np.asarray(widths, dtype=np.int64), most)]
    f32 = np.float32
    return (
        np.empty((most, d), dtype=f32),  # evaluation rows: the lanes take turns
        np.empty((slots, most, d), dtype=f32),  # training rows, per lane
        np.empty((slots, most), dtype=f32),
        *(np.empty((slots, size), dtype=f32) for size in sizes),
        np.empty(P, dtype=f32),
        np.empty((M + Gn, d), dtype=f32),
        np.empty((M + Gn, d), dtype=f32),
    )


def _find_blas() -> None:
    """Find the BLAS that compiled code calls (SciPy's OpenBLAS, via ``threadpoolctl``) and run it on
    one thread: the kernel multiplies small matrices from its own threads, one per member group, and
    BLAS threads of its own would only add synchronisation and oversubscribe the cores. NumPy's and
    Torch's libraries are untouched. Without ``threadpoolctl`` the BLAS keeps its default. (Two BLAS
    threads for one large member, M = N = 4096, were slower here: OpenBLAS's threads spin between
    products and take the core from the element-wise passes.)"""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    for lib in ThreadpoolController().lib_controllers:
        if lib.internal_api == "openblas" and "scipy" in str(lib.filepath).rsplit("/", 2)[-2]:
            lib.set_num_threads(1)
            return


def _compile() -> None:
    start = time.perf_counter()
    try:
        _smoke_run()
        _find_blas()
        _STATE.ready = True
    except Exception as exc:  # any compile failure means: stay eager, and say why
        _STATE.error = f"{type(exc).__name__}: {exc}"
    finally:
        _STATE.seconds = time.perf_counter() - start


def cache_is_warm() -> bool:
    """Whether Numba's disk cache holds the kernel for this source (loading it takes about a second;
    compiling, about 50 s on two cores). Reads Numba's cache index; any doubt counts as cold."""
    if numba is None:
        return False
    try:
        return bool(run_members._cache._cache_file._load_index())
    except Exception:  # an internal of Numba's: if it moves, assume the slow case
        return False


def ensure_compiled(block: bool = True, timeout: float | None = None) -> bool:
    """Compile the kernels (first use on a machine; later processes load Numba's disk cache).

    With ``block=False`` the compile runs in a background thread and this returns at once; the
    eager path serves meanwhile. Returns whether the kernels are ready."""
    if numba is None:
        return False
    with _STATE.lock:
        if _STATE.ready or _STATE.error is not None:
            return _STATE.ready
        if _STATE.thread is None:
            _STATE.thread = threading.Thread(target=_compile, name="gpa-kernel-compile", daemon=True)
            _STATE.thread.start()
        thread = _STATE.thread
    if block:
        thread.join(timeout)
    return _STATE.ready


def wait_briefly(seconds: float) -> bool:
    """Start the compile if needed and, when Numba's disk cache is warm, wait up to ``seconds`` for
    the load (about a second; every caller waits for the same load, so flows built at once by
    several threads all get the kernel). A cold cache means a compile of about 50 s: then nobody
    waits, and callers go eagerly at once, so the first motion is never held back. Returns readiness."""
    if numba is None:
        return False
    return ensure_compiled(block=not _STATE.ready and cache_is_warm(), timeout=seconds)


def _smoke_run() -> None:
    """Call the kernel once on a tiny problem with the argument types GPAFlow uses."""
    rng = np.random.default_rng(0)
    K, M, N, d = 1, 3, 4, 2
    widths = np.array([d, 3, 3, 1], dtype=np.int64)
    w_off = np.array([0, 6, 15], dtype=np.int64)
    b_off = np.array([18, 21, 24], dtype=np.int64)
    P = 26
    theta = (0.3 * rng.standard_normal((K, P))).astype(np.float32)
    v_off = np.array([0, 2, 5], dtype=np.int64)
    acts = np.array([RELU, RELU], dtype=np.int64)
    vec = np.full((K, 9), 0.5, dtype=np.float32)
    one = np.array([1.0], dtype=np.float32)
    spectral = np.array([LIP_SPECTRAL], dtype=np.int64)
    X = rng.standard_normal((K, N, d)).astype(np.float32)
    codes = np.array([KL_LT], dtype=np.int64)
    prepare_members(X, theta, vec, vec.copy(), widths, w_off, b_off, v_off, acts, codes, np.array([2.0]), one,
                    spectral, 1, 3)  # fmt: skip
    project_members(theta, vec, widths, w_off, v_off, spectral, one, 1)
    run_members(
        np.arange(K, dtype=np.int64),
        2,
        0,
        1,
        rng.standard_normal((K, M, d)).astype(np.float32),
        np.zeros((K, 0, d), dtype=np.float32),
        X,
        theta,
        np.zeros_like(theta),
        np.zeros_like(theta),
        np.zeros(K, dtype=np.float32),
        vec,
        vec.copy(),
        widths,
        w_off,
        b_off,
        v_off,
        acts,
        codes,
        np.array([2.0]),
        one,
        spectral,
        np.array([1e-3]),
        np.array([0.1], dtype=np.float32),
        np.array([True]),
        np.array([10], dtype=np.int64),
        1,
        1,
        False,
        0.9,
        0.999,
        1e-8,
        np.ones(K, dtype=np.bool_),
        np.zeros(K),
        np.full(K, 1e4, dtype=np.float32),  # the runaway radius, float32 like the data
        np.full(K, -1, dtype=np.int64),
        np.full(K, np.nan),
        np.zeros((K, 2)),
        np.zeros((2, 6, K)),
        0,
        1,
        *group_buffers(P),
        thread_scratch(widths, M, 0, N, P, 0, 1),
    )
