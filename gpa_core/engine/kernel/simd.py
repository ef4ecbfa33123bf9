"""The kernel's matrix products: small register kernels on 8-wide float32 LLVM vectors.

OpenBLAS packs its operands before every product; for the shapes of a GPA step (n × 32 by 32 × 32)
the packing costs about a third of its time. These kernels keep a 2 × 32 block of the result in
eight 8-wide registers (LLVM vectors: AVX on x86, split into NEON/SSE pairs elsewhere) and read the
operands in place. They need C-contiguous rows and a multiple of 32 result columns; anything else
goes to BLAS (``np.dot``), so every function here computes the same product for any input.

A 32-column strip of a row is a *panel*: four vectors, loaded, multiplied-and-added and stored
together by the ``_panel_*`` helpers. Each output entry is one chain of fused multiply-adds over the
inner dimension, in order, whatever the block it sits in, so a product's result does not depend on
how many rows it has.

Eager twins: ``torch.bmm`` in ``BatchedMLP.forward``/``backward`` (gpa_core/algorithm/discriminator.py)
and ``torch.sum`` for the bias gradients.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from gpa_core.engine.kernel.jit import jit

_f32 = np.float32
_V8 = ir.VectorType(ir.FloatType(), 8)

#: narrow layers the register kernels do not fit: multiplied in a loop, not in BLAS
SMALL_INPUT = 8


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


# -- panels: 32 float32 of a row as four vectors -------------------------------------------------
@jit
def _panel_zero():
    return (_vzero(), _vzero(), _vzero(), _vzero())


@jit
def _panel_load(A, i):
    """Elements i … i+31 of a contiguous array."""
    return (_vload(A, i), _vload(A, i + 8), _vload(A, i + 16), _vload(A, i + 24))


@jit
def _panel_store(A, i, c):
    _vstore(A, i, c[0])
    _vstore(A, i + 8, c[1])
    _vstore(A, i + 16, c[2])
    _vstore(A, i + 24, c[3])


@jit
def _panel_fma(x, b, c):
    """c + x·b for a scalar x (splat) and panels b, c."""
    s = _vsplat(x)
    return (_vfma(s, b[0], c[0]), _vfma(s, b[1], c[1]), _vfma(s, b[2], c[2]), _vfma(s, b[3], c[3]))


@jit
def _panel_add(a, b):
    return (_vadd(a[0], b[0]), _vadd(a[1], b[1]), _vadd(a[2], b[2]), _vadd(a[3], b[3]))


@jit
def _panel_where_positive(z, x):
    """x where z > 0, else 0."""
    return (
        _vwhere_positive(z[0], x[0]),
        _vwhere_positive(z[1], x[1]),
        _vwhere_positive(z[2], x[2]),
        _vwhere_positive(z[3], x[3]),
    )


# -- the products ----------------------------------------------------------------------------------
@jit
def contiguous_rows(A):
    """Whether a float32 matrix is laid out row after row with no gaps (flat indexing works)."""
    if A.size == 0:  # NumPy may give empty arrays zero strides
        return True
    return (A.shape[1] <= 1 or A.strides[1] == 4) and (A.shape[0] <= 1 or A.strides[0] == 4 * A.shape[1])


@jit
def panels_fit(A, B, C):
    """Whether the register kernels can compute C = A B (else BLAS does)."""
    return B.shape[1] % 32 == 0 and contiguous_rows(A) and contiguous_rows(B) and contiguous_rows(C)


PLAIN, RELU_MASK, BIAS_RELU = range(3)  # what _matmul_into does as it stores a block of rows


@jit
def matmul(A, B, C):
    """C = A B (A: n × K, B: K × m, C: n × m)."""
    _matmul_into(A, B, C, C, C[:0, 0], C, PLAIN)


@jit
def matmul_relu(A, B, C, Z):
    """C = (A B) ⊙ 1[Z > 0]: a product followed by ReLU's derivative at pre-activations Z
    (n × m, or more rows), applied as the rows are stored. (Masking C in place afterwards
    compiles to masked stores, which are microcoded and slow on AMD Zen.) Eager twin:
    ``torch.ops.aten.threshold_backward`` after ``torch.bmm`` in ``BatchedMLP.backward``."""
    _matmul_into(A, B, C, Z, C[:0, 0], C, RELU_MASK)


@jit
def matmul_bias_relu(A, B, C, b, post):
    """A ReLU layer's forward pass: pre-activations C = A B + b and outputs post = max(C, 0),
    both written as the rows are stored (False where the register kernels do not fit)."""
    if not (panels_fit(A, B, C) and contiguous_rows(post) and b.strides[0] == 4):
        return False
    _matmul_into(A, B, C, C, b, post, BIAS_RELU)
    return True


@jit
def _matmul_into(A, B, C, Z, b, post, mode):
    if not panels_fit(A, B, C) or (mode == RELU_MASK and not contiguous_rows(Z)):
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
        bias = _panel_load(b, p) if mode == BIAS_RELU else _panel_zero()
        r = 0
        while r < n:  # rows r and r + 1 (r again for an odd last row, not stored twice)
            two = r + 1 < n
            a0 = r * K
            a1 = a0 + K if two else a0
            c0 = _panel_zero()
            c1 = _panel_zero()
            for k in range(K):
                row = _panel_load(B, k * m + p)
                c0 = _panel_fma(_sload(A, a0 + k), row, c0)
                c1 = _panel_fma(_sload(A, a1 + k), row, c1)
            o = r * m + p
            if mode == BIAS_RELU:
                c0 = _panel_add(c0, bias)
                _panel_store(post, o, _panel_where_positive(c0, c0))
                if two:
                    c1 = _panel_add(c1, bias)
                    _panel_store(post, o + m, _panel_where_positive(c1, c1))
            if mode == RELU_MASK:
                c0 = _panel_where_positive(_panel_load(Z, o), c0)
                if two:
                    c1 = _panel_where_positive(_panel_load(Z, o + m), c1)
            _panel_store(C, o, c0)
            if two:
                _panel_store(C, o + m, c1)
            r += 2


@jit
def relu_outer(g, dv, w, z):
    """g[r, c] = dv[r] w[c] where z[r, c] > 0 else 0: the output layer's gradient through ReLU."""
    n, m = g.shape
    if m % 8 != 0 or not (contiguous_rows(g) and contiguous_rows(z)) or w.strides[0] != 4:
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


@jit
def column_sums(g, out):
    """out[j] = Σ_r g[r, j] (a bias gradient), 32 columns at a time in registers."""
    n, m = g.shape
    if m % 32 != 0 or not contiguous_rows(g) or out.strides[0] != 4:
        for j in range(m):
            out[j] = 0.0
        for r in range(n):
            for j in range(m):
                out[j] += g[r, j]
        return
    for p in range(0, m, 32):
        s = _panel_zero()
        for r in range(n):
            s = _panel_add(s, _panel_load(g, r * m + p))
        _panel_store(out, p, s)


@jit
def matmul_tn(G, H, C):
    """C = Gᵀ H (G: n × o, H: n × m, C: o × m), the weight gradient, over blocks of 128 rows
    that stay in the L1 cache while every 2 × 32 block of C passes over them."""
    if not panels_fit(G, H, C):
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
            while j < o:  # result rows j and j + 1 (j again for an odd last one, not stored twice)
                two = j + 1 < o
                j1 = j + 1 if two else j
                o0 = j * m + p
                o1 = j1 * m + p
                if r0 == 0:
                    c0 = _panel_zero()
                    c1 = _panel_zero()
                else:
                    c0 = _panel_load(C, o0)
                    c1 = _panel_load(C, o1)
                for r in range(r0, r1):
                    row = _panel_load(H, r * m + p)
                    c0 = _panel_fma(_sload(G, r * o + j), row, c0)
                    c1 = _panel_fma(_sload(G, r * o + j1), row, c1)
                _panel_store(C, o0, c0)
                if two:
                    _panel_store(C, o1, c1)
                j += 2
