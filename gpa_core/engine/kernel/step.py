"""The stages of a compiled GPA step (Algorithm 3.1), each the twin of an eager function.

Every stage restates, in float32 loops over one member's rows, a piece of the eager path's Torch
code; its docstring names that twin and the paper's equation. The arithmetic is the eager path's,
in float32 (sums accumulate in float64), and overflow stays an outcome: e^{φ-ν-1} beyond float32's
range becomes +∞ exactly as it does eagerly. The order of a sum is fixed by the code only up to the
CPU (``jit.FLAGS``; BLAS picks its kernel by CPU), so the two paths agree to float32 rounding
(``tests/test_kernel.py`` compares each stage with its twin), and this path repeats itself bit for bit.

The network's parameters live in one row θ of ``BatchedMLP.flat`` (weights, biases, then ν); its
shape comes as a :class:`~gpa_core.engine.kernel.args.Net`, the batch's settings as
:class:`~gpa_core.engine.kernel.args.Settings` and the state as the other named tuples of
:mod:`~gpa_core.engine.kernel.args`. Layer buffers are views into a workspace allocated once per
call (``workspace``): page-faulting fresh megabytes on every product would cost more than the
arithmetic at M = N = 4096.

========================  ===========================================================  ==============
stage                     eager twin                                                   paper
========================  ===========================================================  ==============
``act``, ``act_prime``    ``discriminator.activation``, ``activation_prime``           σ, Remark 3.2
``forward``               ``BatchedMLP.forward``                                       φ = W_D σ(…)
``backward``              ``BatchedMLP.backward``                                      ∂/∂θ, ∇_x φ
``out_map``               ``divergences.output_activation``                            φ = g(V)
``objective_part`` …      ``divergences.objective`` (``f_star``, ``f_star_prime``)     eq. (1.4)
``optimal_nu``            ``divergences.optimal_nu``                                   line 3
``adam``                  ``BatchedAdam.step`` (torch's fused Adam)                    lines 7–8
``sigma``, ``project``    ``BatchedMLP.spectral_norms``, ``project``                   lines 4, 9
``lipschitz_bound``       ``BatchedMLP.lipschitz_bound``                               ∏ σ_max(W_l)
``train``                 ``GPAFlow._train``                                           lines 6–10
``field``                 ``GPAFlow._field``                                           ∇φ
``euler_rows`` …          ``GPAFlow._velocity``, ``solvers.advance``                   line 11, (3.3)
``heun_corrector``        ``solvers.advance`` (Heun)                                   Remark 3.2
``advance_members``       ``EagerEngine.advance``                                      Algorithm 3.1
========================  ===========================================================  ==============
"""

from __future__ import annotations

import math

import numpy as np
from numba.typed import List

from gpa_core.engine.kernel.args import Group, Net, Params, Points, Scratch, Settings, Status
from gpa_core.engine.kernel.codes import (
    ALPHA,
    JS,
    KL_DV,
    KL_DV_NAIVE,
    KL_LT,
    LEAKY_RELU,
    LIP_NONE,
    LIP_PENALTY,
    LIP_SPECTRAL,
    REC_BOUND,
    REC_DIVERGENCE,
    REC_GAUGE,
    REC_KINETIC,
    REC_SPEED,
    REC_TIME,
    RELU,
    REVERSE_KL,
    SOFTPLUS,
    TRAINED_NU,
)
from gpa_core.engine.kernel.jit import jit
from gpa_core.engine.kernel.lanes import (
    LANES,
    S_EXTENT,
    S_FINITE,
    S_GAUGE,
    S_KIN,
    S_SEXP,
    S_SF,
    S_SP,
    S_SPEED,
    S_SR,
    S_VMAX,
    barrier,
    lane_rows,
    lane_spans,
)
from gpa_core.engine.kernel.simd import (
    SMALL_INPUT,
    column_sums,
    matmul,
    matmul_bias_relu,
    matmul_relu,
    matmul_tn,
    panels_fit,
    relu_outer,
)

_f32 = np.float32
_LEAKY = np.float32(0.01)  # discriminator.LEAKY_SLOPE
_EPS_SMOOTH = np.float32(0.5)  # discriminator.SMOOTH_RELU_WIDTH
_HALF_LOG2 = 0.5 * math.log(2.0)  # divergences.Y_MAX["js"]


# -- the network: activations, forward and backward passes ----------------------------------------
@jit
def softplus(x):
    """torch.nn.functional.softplus (β = 1, threshold 20)."""
    if x > 20.0:
        return x
    return _f32(math.log1p(math.exp(x)))


@jit
def sigmoid(x):
    """σ(x) = 1/(1 + e^{−x}) in float32; eager twin: ``torch.sigmoid`` (the JS objective)."""
    return _f32(1.0 / (1.0 + math.exp(-x)))


@jit
def act(code, z):
    """σ(z): ``discriminator.activation`` (smooth ReLU: Remark 3.2's C² ReLU)."""
    if code == RELU:
        return z if z > 0 else _f32(0.0)
    if code == LEAKY_RELU:
        return z if z > 0 else _LEAKY * z
    if code == SOFTPLUS:
        return softplus(z)
    u = min(max(z / _EPS_SMOOTH, _f32(0.0)), _f32(1.0))
    if z >= _EPS_SMOOTH:
        return z - _f32(0.5) * _EPS_SMOOTH
    return _EPS_SMOOTH * (u * u * u - _f32(0.5) * u * u * u * u)


@jit
def act_prime(code, z):
    """σ'(z): ``discriminator.activation_prime``."""
    if code == RELU:
        return _f32(1.0) if z > 0 else _f32(0.0)
    if code == LEAKY_RELU:
        return _f32(1.0) if z > 0 else _LEAKY
    if code == SOFTPLUS:
        return sigmoid(z)
    u = min(max(z / _EPS_SMOOTH, _f32(0.0)), _f32(1.0))
    return u * u * (_f32(3.0) - _f32(2.0) * u)


@jit
def workspace(widths, n):
    """Layer buffers for n rows: pre-activations, layer outputs, two gradient buffers, the input
    gradient and the network output (flat; ``views`` shapes them)."""
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


@jit
def lane_workspace(ws, w):
    """Row ``w`` of each of a thread's workspace buffers: one lane's ``workspace``."""
    return (ws[0][w], ws[1][w], ws[2][w], ws[3][w], ws[4][w], ws[5][w])


@jit
def views(net, Z, ws):
    """The layer buffers of a forward pass at the rows of Z, as views into the workspace ``ws``:
    (V, pre-activations, layer inputs with Z first) — ``discriminator.ForwardCache``. Rebuilding
    them costs no arithmetic, so a lane's backward pass can resume from its forward pass after a
    barrier."""
    pre_buf, post_buf, _, _, _, v_buf = ws
    widths = net.widths
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


@jit
def forward(theta, net, Z, ws):
    """φ's network output V at the rows of Z (n, d), with the pre-activations and the layer inputs
    (Z first) kept for the backward pass: ``BatchedMLP.forward``, z_l = W_l h_{l-1} + b_l,
    h_l = σ(z_l). Products go to the register kernels, which add the bias and apply ReLU as they
    store (BLAS for widths they do not fit, then bias and activation in one pass)."""
    V, pres, posts = views(net, Z, ws)
    widths, w_off, b_off, acts = net.widths, net.w_off, net.b_off, net.acts
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
        if code == RELU and matmul_bias_relu(h, WT, z, b, a):
            h = a
            continue
        if panels_fit(h, WT, z) or i > SMALL_INPUT:
            matmul(h, WT, z)
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
                    a[r, j] = act(code, v)
        h = a
    last = D - 1
    w = theta[w_off[last] : w_off[last] + widths[last]]
    np.dot(h, w, V)
    b_last = theta[b_off[last]]
    for r in range(n):
        V[r] += b_last
    return V, pres, posts


@jit
def backward(theta, grad, net, pres, posts, dV, n, weights, inputs, ws):
    """Back-propagate dV (∂loss/∂V on the first n rows) — ``BatchedMLP.backward``: parameter
    gradients into ``grad`` if ``weights``; returns ∂loss/∂x (n, d) if ``inputs`` (an empty array
    otherwise)."""
    _, _, g_buf, gn_buf, gin_buf, _ = ws
    widths, w_off, b_off, acts = net.widths, net.w_off, net.b_off, net.acts
    D = widths.shape[0] - 1
    d = widths[0]
    last = D - 1
    i = widths[last]
    w = theta[w_off[last] : w_off[last] + i]
    dv = dV[:n]
    if weights:
        matmul_tn(dv.reshape((n, 1)), posts[last][:n], grad[w_off[last] : w_off[last] + i].reshape((1, i)))
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
        relu_outer(g, dv, w, z)
    else:
        for r in range(n):
            for c in range(i):
                g[r, c] = dv[r] * w[c] * act_prime(code, z[r, c])
    for layer in range(D - 2, -1, -1):
        i = widths[layer]
        o = widths[layer + 1]
        W = theta[w_off[layer] : w_off[layer] + o * i].reshape((o, i))
        if weights:
            h = posts[layer]
            dW = grad[w_off[layer] : w_off[layer] + o * i].reshape((o, i))
            if i <= SMALL_INPUT:  # (Hᵀ g)ᵀ: o = 32k columns suit the registers, i = 2 does not
                dWT = np.empty((i, o), dtype=np.float32)
                matmul_tn(h[:n], g, dWT)
                dW[:, :] = dWT.T
            else:
                matmul_tn(g, h[:n], dW)
            column_sums(g, grad[b_off[layer] : b_off[layer] + o])
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
                matmul(g, W, gin)
            return gin
        gn = gn_buf[: n * i].reshape((n, i))
        code = acts[layer - 1]
        z = pres[layer - 1]
        if code == RELU:
            matmul_relu(g, W, gn, z)
        else:
            matmul(g, W, gn)
            for r in range(n):
                for c in range(i):
                    gn[r, c] *= act_prime(code, z[r, c])
        g_buf, gn_buf = gn_buf, g_buf
        g = gn
    return none


# -- the objective J(φ, ν) of eq. (1.4), lane by lane ----------------------------------------------
@jit
def out_map(code, v):
    """(φ, g'(V)) of the output map — ``divergences.output_activation``: identity for KL/α,
    Y_MAX - softplus(-V) for reverse KL and JS."""
    if code == REVERSE_KL:
        return -softplus(-v), sigmoid(-v)
    if code == JS:
        return _f32(_HALF_LOG2) - softplus(-v), sigmoid(-v)
    return v, _f32(1.0)


@jit
def empty_stats(st):
    """A lane's statistics before any row: sums 0, maxima -∞, finite."""
    st[:] = 0.0
    st[S_GAUGE] = -np.inf
    st[S_VMAX] = -np.inf
    st[S_FINITE] = 1.0


@jit
def objective_part(code, alpha, nu, V, p0, ml, q0, nl, m, nq, dV, st):
    """One lane's share of J(φ, ν) = E_P[φ] - ν - E_Q[f*(φ - ν)] (eq. (1.4); the twin of
    ``divergences.objective``, with f* and (f*)' of ``f_star``/``f_star_prime``): outputs V at its
    P rows [p0, p0+ml) and Q rows [q0, q0+nl) of a member with m and nq rows in all. Writes the
    lane's partial sums into ``st`` (see ``combined``) and dV = ∂(-J)/∂V on its rows, except on the Q
    rows of the Donsker–Varadhan forms, which normalise over all of Q (``dv_global`` writes those)."""
    sp = 0.0
    if code == REVERSE_KL or code == JS:
        for r in range(p0, p0 + ml):
            phi, slope = out_map(code, V[r])
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
            y, slope = out_map(code, V[r])
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


@jit
def combined(code, nu, parts, m, nq):
    """J(φ, ν) of eq. (1.4), ∂J/∂ν, the overflow gauge (max of f*'s argument) and, for the
    Donsker–Varadhan forms, the normaliser (max, Σ e^{φ-max}; naive: Σ e^φ) from the lanes'
    partial sums ``parts`` (LANES, NSTAT), always added in lane order: every thread gets the
    same numbers, whichever thread computed which lane. (``ObjectiveEval``'s value, d_nu and
    max_exp_arg.)"""
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
    if TRAINED_NU[code]:
        return mean_p - nu - sf / nq, sr / nq - 1.0, gauge, vmax, 0.0
    return mean_p - sf / nq, 0.0, gauge, vmax, 0.0


@jit
def dv_global(code, V, q0, nl, vmax, s, dV):
    """dV on a lane's Q rows for the Donsker–Varadhan forms, once ``combined`` has the normaliser
    over all of Q: e^{φ-max}/Σ (log-sum-exp; eagerly ``torch.softmax``) or float32 e^φ/Σ e^φ
    (naive)."""
    if code == KL_DV:
        for r in range(q0, q0 + nl):
            dV[r] = _f32(math.exp(V[r] - vmax) / s)
    else:
        s32 = _f32(s)
        for r in range(q0, q0 + nl):
            dV[r] = _f32(math.exp(V[r])) / s32


@jit
def optimal_nu(code, alpha, V, q0, nq):
    """ν* with E_Q[(f*)'(φ - ν*)] = 1 — ``divergences.optimal_nu`` (where Algorithm 3.1 line 3
    starts ν): log E_Q[e^φ] - 1 for KL, 60 bisection steps for α."""
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


# -- the optimizer and the projection -------------------------------------------------------------
@jit
def adam(theta, grad, m, v, k, tstep, lr, beta1, beta2, eps):
    """One Adam step on (W, ν) (Algorithm 3.1, lines 7–8) — ``BatchedAdam.step``, torch's fused
    formula: bias-corrected moments, ε added after the square root."""
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


@jit
def sigma(theta, net, vec, layer, iterations, use_power, refresh):
    """σ_max(W_layer) — ``BatchedMLP.spectral_norms``: exact for a row or column; else warm-started
    power iteration on ``vec`` (``frobenius_norms`` without ``use_power``)."""
    widths, w_off, v_off = net.widths, net.w_off, net.v_off
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


@jit
def project(theta, net, pvec, mode, scale, iterations):
    """W_l ← L^{1/D} W_l / ‖W_l‖ for one member (Algorithm 3.1, lines 4 and 9) —
    ``BatchedMLP.project``; members without a projection (L = ∞, a gradient penalty) are left as
    they are."""
    if mode == LIP_NONE or mode == LIP_PENALTY:
        return
    widths, w_off = net.widths, net.w_off
    D = widths.shape[0] - 1
    for layer in range(D):
        s = sigma(theta, net, pvec, layer, iterations, mode == LIP_SPECTRAL, True)
        factor = _f32(scale / max(_f32(s), _f32(1e-30)))
        o = widths[layer + 1]
        i = widths[layer]
        for p in range(w_off[layer], w_off[layer] + o * i):
            theta[p] *= factor


@jit
def lipschitz_bound(theta, net, dvec):
    """∏_l σ_max(W_l) by one warm-started power iteration on the diagnostic vectors —
    ``BatchedMLP.lipschitz_bound``."""
    bound = 1.0
    for layer in range(net.widths.shape[0] - 1):
        bound *= _f32(sigma(theta, net, dvec, layer, 1, True, True))
    return _f32(bound)


# -- training, the field, the particle update -----------------------------------------------------
@jit
def train(k, pts, X, own, net, settings, group, count, scratch):
    """m_max Adam steps on (W, ν) for member k at its particles ``pts`` (M, d) and target X[k]
    (Algorithm 3.1, lines 6–10) — ``GPAFlow._train``.

    Each of this thread's lanes runs the forward and backward pass on its rows; after a barrier
    every thread adds the lanes' gradients in lane order and takes the same Adam step and
    projection on its own copy of the parameters ``own`` (a :class:`Params`), so one barrier per
    inner step is all the synchronisation. ``group`` holds the lanes' (gradient, statistics)
    partials, double-buffered by barrier parity; ``scratch`` this thread's rows, dV and workspace
    per lane it runs."""
    # named-tuple fields read once (each read of a field counts a reference, atomically)
    rank, nthreads, _, gpart, spart, _ = group
    Zt, dVs, ws, grad = scratch.train_rows, scratch.dV, scratch.ws, scratch.grad
    theta, mom, vel, tstep, pvec = own.theta[k], own.mom, own.vel, own.tstep, own.pvec[k]
    code, alpha, lr = settings.code[k], settings.alpha[k], settings.lr[k]
    lip, scale, inner, power_its = settings.lip[k], settings.scale[k], settings.inner, settings.power_its
    beta1, beta2, eps = settings.beta1, settings.beta2, settings.eps
    M = pts.shape[0]
    N = X.shape[1]
    P = theta.shape[0]
    global_q = code == KL_DV or code == KL_DV_NAIVE
    for lane in range(rank, LANES, nthreads):
        slot = lane // nthreads
        p0, p1 = lane_rows(M, lane)
        q0, q1 = lane_rows(N, lane)
        Zt[slot, : p1 - p0] = pts[p0:p1]
        Zt[slot, p1 - p0 : p1 - p0 + q1 - q0] = X[k, q0:q1]
    for _ in range(inner):
        b = count[0] % 2
        nu = theta[P - 1]
        for lane in range(rank, LANES, nthreads):
            slot, ml, n, g = _lane_in_training(gpart, b, lane, nthreads, M, N)
            if n == 0:
                empty_stats(spart[b, lane])
                continue
            w = slot if global_q else 0  # one workspace, unless kept across the DV barrier
            wsl = lane_workspace(ws, w)
            V, pres, posts = forward(theta, net, Zt[slot, :n], wsl)
            objective_part(code, alpha, nu, V, 0, ml, ml, n - ml, M, N, dVs[slot], spart[b, lane])
            if not global_q:
                backward(theta, g, net, pres, posts, dVs[slot], n, True, False, wsl)
        if global_q:  # the normaliser over all of Q first, then each lane's backward pass
            barrier(group, count)
            _, _, _, vmax, s = combined(code, nu, spart[b], M, N)
            b = count[0] % 2
            for lane in range(rank, LANES, nthreads):
                slot, ml, n, g = _lane_in_training(gpart, b, lane, nthreads, M, N)
                if n == 0:
                    continue
                wsl = lane_workspace(ws, slot)
                V, pres, posts = views(net, Zt[slot, :n], wsl)
                dv_global(code, V, ml, n - ml, vmax, s, dVs[slot])
                backward(theta, g, net, pres, posts, dVs[slot], n, True, False, wsl)
        barrier(group, count)
        for p in range(P):
            acc = gpart[b, 0, p]
            for lane in range(1, LANES):
                acc += gpart[b, lane, p]
            grad[p] = acc
        if TRAINED_NU[code]:
            _, d_nu, _, _, _ = combined(code, nu, spart[b], M, N)
            grad[P - 1] = _f32(-d_nu)
        else:
            grad[P - 1] = _f32(0.0)
        adam(theta, grad, mom, vel, k, tstep, lr, beta1, beta2, eps)
        project(theta, net, pvec, lip, scale, power_its)


@jit
def _lane_in_training(gpart, b, lane, nthreads, M, N):
    """A lane's (slot, particle rows, all rows — particles, then target —, gradient partial) in
    training; the partial of a lane without rows is zeroed."""
    p0, p1 = lane_rows(M, lane)
    q0, q1 = lane_rows(N, lane)
    g = gpart[b, lane]
    if p1 - p0 + q1 - q0 == 0:
        g[:] = 0.0
    return lane // nthreads, p1 - p0, p1 - p0 + q1 - q0, g


@jit
def field(code, theta, grad, net, V, pres, posts, n, dV, ws):
    """∇φ at the first n rows of a forward pass (V, pres, posts), φ = g(V) for the output map g —
    ``GPAFlow._field``."""
    for r in range(n):
        dV[r] = out_map(code, V[r])[1]
    return backward(theta, grad, net, pres, posts, dV, n, False, True, ws)


@jit
def field_at(code, theta, grad, net, rows, Zs, dV, ws):
    """(Z, ∇φ(Z)) at ``rows`` copied into the evaluation rows ``Zs``, in a pass of their own."""
    n = rows.shape[0]
    Z = Zs[:n]
    Z[:] = rows
    V, pres, posts = forward(theta, net, Z, ws)
    return Z, field(code, theta, grad, net, V, pres, posts, n, dV, ws)


@jit
def euler_rows(Z, grad_phi, h, v1, y_new, first):
    """The Euler step Y + Δt v, v = -∇φ (Algorithm 3.1 line 11; ``solvers.advance``) for the rows
    ``first`` … of the moving points: the velocity into v1 (Heun's corrector reuses it), the
    predictor into y_new. Returns Σ |∇φ|² and max |∇φ|² over the rows (eq. (3.3))."""
    kinetic = 0.0
    speed = 0.0
    for r in range(grad_phi.shape[0]):
        sq = 0.0
        for c in range(grad_phi.shape[1]):
            v1[first + r, c] = -grad_phi[r, c]
            sq += grad_phi[r, c] * grad_phi[r, c]
            y_new[first + r, c] = Z[r, c] + h * v1[first + r, c]
        kinetic += sq
        speed = max(speed, sq)
    return kinetic, speed


@jit
def velocity_and_euler(k, points, theta, net, settings, group, scratch, part):
    """Stage 0 of a particle step, after training at Y_n — ``GPAFlow._velocity(…, 0)`` and
    ``solvers.advance``'s Euler step: (φ, ∇φ) at each lane's [Y; X] rows (the rows training used),
    the lane's share of J(φ_n, ν_n) and of the kinetic energy (3.3) into its statistics ``part``,
    and the Euler predictor; then, in a pass of their own, the generated points' ∇φ and predictor.
    A product's rounding may depend on a row's place in it (BLAS edge kernels), so the trained rows
    never share a pass with generated ones, as eagerly."""
    Y, Gen, X = points
    Zs, dVs, ws, grad = scratch.rows, scratch.dV, scratch.ws, scratch.grad
    v1, y_new = scratch.v1, scratch.y_new
    rank, nthreads = group.rank, group.nthreads
    M, Gn, N = Y.shape[1], Gen.shape[1], X.shape[1]
    code, alpha, h = settings.code[k], settings.alpha[k], settings.dt[k]
    nu = theta[theta.shape[0] - 1]
    for lane in range(rank, LANES, nthreads):
        slot = lane // nthreads
        p0, p1, g0, g1, q0, q1 = lane_spans(M, Gn, N, lane)
        ml = p1 - p0
        nl = q1 - q0
        st = part[lane]
        empty_stats(st)
        wsl = lane_workspace(ws, 0)
        kinetic = 0.0
        speed = 0.0
        if ml + nl > 0:
            Z = Zs[: ml + nl]
            Z[:ml] = Y[k, p0:p1]
            Z[ml:] = X[k, q0:q1]
            V, pres, posts = forward(theta, net, Z, wsl)
            objective_part(code, alpha, nu, V, 0, ml, ml, nl, M, N, dVs[slot], st)
            grad_phi = field(code, theta, grad, net, V, pres, posts, ml, dVs[slot], wsl)
            kinetic, speed = euler_rows(Z, grad_phi, h, v1, y_new, p0)
        if g1 > g0:
            Z, grad_phi = field_at(code, theta, grad, net, Gen[k, g0:g1], Zs, dVs[slot], wsl)
            euler_rows(Z, grad_phi, h, v1, y_new, M + g0)
        st[S_KIN] = kinetic
        st[S_SPEED] = speed


@jit
def heun_corrector(k, points, theta, net, settings, group, scratch):
    """Heun's corrector (Remark 3.2), once φ is retrained at the predictor Ỹ in y_new —
    ``solvers.advance``: Y_{n+1} = Y_n + Δt/2 (v(Y_n) + ṽ(Ỹ)) into y_new, for each lane's particles,
    then its generated points, each in a pass of their own."""
    Y, Gen, _ = points
    Zs, dVs, ws, grad = scratch.rows, scratch.dV, scratch.ws, scratch.grad
    v1, y_new = scratch.v1, scratch.y_new
    rank, nthreads = group.rank, group.nthreads
    M, Gn = Y.shape[1], Gen.shape[1]
    code = settings.code[k]
    half = _f32(0.5) * settings.dt[k]
    for lane in range(rank, LANES, nthreads):
        slot = lane // nthreads
        p0, p1, g0, g1, _, _ = lane_spans(M, Gn, 0, lane)
        wsl = lane_workspace(ws, 0)
        for first, y0 in ((p0, Y[k, p0:p1]), (M + g0, Gen[k, g0:g1])):
            nm = y0.shape[0]
            if nm == 0:
                continue
            _, grad_phi = field_at(code, theta, grad, net, y_new[first : first + nm], Zs, dVs[slot], wsl)
            for r in range(nm):
                for c in range(y0.shape[1]):
                    y_new[first + r, c] = y0[r, c] + half * (v1[first + r, c] - grad_phi[r, c])


@jit
def check_moved(k, points, group, y_new, part):
    """Whether each lane's moved points (particles and generated) are finite, and how far out the
    farthest lies: ``EagerEngine.advance``'s non-finite and runaway tests, lane by lane."""
    M, Gn = points.Y.shape[1], points.gen.shape[1]
    rank, nthreads = group.rank, group.nthreads
    for lane in range(rank, LANES, nthreads):
        p0, p1, g0, g1, _, _ = lane_spans(M, Gn, 0, lane)
        finite = True
        extent = 0.0
        for row in range(p0, p1 + g1 - g0):
            rr = row if row < p1 else M + g0 + row - p1
            for c in range(y_new.shape[1]):
                x = y_new[rr, c]
                if not math.isfinite(x):
                    finite = False
                extent = max(extent, abs(float(x)))
        part[lane, S_FINITE] = 1.0 if finite else 0.0
        part[lane, S_EXTENT] = extent


@jit
def step_outcome(code, nu, part, M, N):
    """The lanes' statistics combined in lane order: (J, the overflow gauge, the kinetic energy
    (3.3) in float32, the top squared speed, whether everything is finite, the extent of the
    moved points)."""
    value, _, gauge, _, _ = combined(code, nu, part, M, N)
    kinetic = 0.0
    speed = 0.0
    finite = math.isfinite(value)
    extent = 0.0
    for lane in range(LANES):
        kinetic += part[lane, S_KIN]
        speed = max(speed, part[lane, S_SPEED])
        finite = finite and part[lane, S_FINITE] == 1.0
        extent = max(extent, part[lane, S_EXTENT])
    kinetic32 = _f32(kinetic / M)
    return value, gauge, kinetic32, speed, finite and math.isfinite(kinetic32), extent


# -- whole calls: start, re-project, advance -------------------------------------------------------
@jit
def prepare_members(X, params, net, settings, warm_up):
    """Algorithm 3.1 lines 3–4, member by member (so a member starts alike in any batch) — the
    eager ``BatchedMLP`` warm-up, ``GPAFlow._project`` and ``GPAFlow._init_nu``: settle the
    power-iteration vectors (``warm_up`` iterations), copy them for the diagnostics, project W, and
    start ν at its minimiser for φ_0 on the target."""
    theta, pvec, dvec = params.theta, params.pvec, params.dvec
    codes, alpha, lip, scale = settings.code, settings.alpha, settings.lip, settings.scale
    power_its = settings.power_its
    K = theta.shape[0]
    P = theta.shape[1]
    D = net.widths.shape[0] - 1
    N = X.shape[1]
    ws = workspace(net.widths, N)
    for k in range(K):
        for layer in range(D):
            sigma(theta[k], net, pvec[k], layer, warm_up, True, True)
        dvec[k, :] = pvec[k]
        project(theta[k], net, pvec[k], lip[k], scale[k], power_its)
        if TRAINED_NU[codes[k]]:
            V, _, _ = forward(theta[k], net, X[k], ws)
            theta[k, P - 1] = optimal_nu(codes[k], alpha[k], V, 0, N)


@jit
def project_members(params, net, settings):
    """The projection of Algorithm 3.1 line 9 for every member (after a live reconfigure) —
    ``GPAFlow._project``."""
    theta, pvec, lip, scale = params.theta, params.pvec, settings.lip, settings.scale
    for k in range(theta.shape[0]):
        project(theta[k], net, pvec[k], lip[k], scale[k], settings.power_its)


@jit
def advance_members(members, n0, n_steps, points, params, status, net, settings, group, scratch):
    """Advance ``members`` by up to ``n_steps`` particle steps from global step n0, as thread
    ``group.rank`` of the ``group.nthreads`` that share this member group — ``EagerEngine.advance``
    (see ``_advance``). The named tuples of :mod:`~gpa_core.engine.kernel.args` may come as plain
    tuples of their fields, and are named again here: Numba types a plain tuple in C but a named
    one in Python, which costs about 5 µs a call (as much as a small step)."""
    return _advance(members, n0, n_steps, Points(*points), Params(*params), Status(*status), Net(*net),
                    Settings(*settings), Group(*group), Scratch(*scratch))  # fmt: skip


@jit
def _advance(members, n0, n_steps, points, params, status, net, settings, group, scratch):
    """The particle steps of ``advance_members``, on the named tuples.

    Per step and member: train φ (with the Adam reset if asked), evaluate (φ, ∇φ) at particles,
    generated points and target, move (Euler, or Heun with φ retrained at the predictor), test for
    non-finite values and runaways, and record into status.rec[step, field, member] every
    ``record_every`` steps (NaN where a member is inactive). Each thread runs the lanes ``rank``,
    ``rank + nthreads``, …; rank 0 owns the shared state (parameters, time, status, records), other
    ranks step private copies of the parameters identically. ``scratch`` is this thread's working
    memory, kept by the caller between calls. Returns the steps taken."""
    # named-tuple fields read once, not in the loops (each read counts a reference, atomically)
    Y, Gen, X = points
    alive, t, runaway, dead_step, dead_time, dead_info, rec = status
    codes, dt, heun, steps_limit = settings.code, settings.dt, settings.heun, settings.steps
    rank, nthreads, epart, y_new, dvec = group.rank, group.nthreads, group.epart, scratch.y_new, params.dvec
    M, Gn, N = Y.shape[1], Gen.shape[1], X.shape[1]
    P = params.theta.shape[1]
    count = np.zeros(1, dtype=np.int64)
    if rank == 0:
        own = params
    else:
        own = Params(params.theta.copy(), params.mom.copy(), params.vel.copy(), params.tstep.copy(),
                     params.pvec.copy(), dvec)  # fmt: skip
    thetas, mom, vel, tstep = own.theta, own.mom, own.vel, own.tstep
    live = alive.copy()
    barrier(group, count)  # every copy is taken before rank 0 changes anything
    lead = rank == 0
    record_every, reset_adam = settings.record_every, settings.reset_adam
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
            if record and lead:
                for fld in range(rec.shape[1]):
                    rec[s, fld, k] = np.nan
            if not (live[k] and n < steps_limit[k]):
                continue
            theta = thetas[k]
            code = codes[k]
            if reset_adam:
                mom[k, :] = 0.0
                vel[k, :] = 0.0
                tstep[k] = 0.0
            train(k, Y[k], X, own, net, settings, group, count, scratch)
            nu = theta[P - 1]
            part = epart[evals % 2]
            velocity_and_euler(k, points, theta, net, settings, group, scratch, part)
            if heun[k]:
                # Remark 3.2: retrain φ at the predictor, average the two velocities
                train(k, y_new[:M], X, own, net, settings, group, count, scratch)
                heun_corrector(k, points, theta, net, settings, group, scratch)
            check_moved(k, points, group, y_new, part)
            barrier(group, count)
            evals += 1
            value, gauge, kinetic, speed, finite, extent = step_outcome(code, nu, part, M, N)
            healthy = finite and not extent > runaway[k]
            if record and lead:
                rec[s, REC_TIME, k] = t[k]
                rec[s, REC_KINETIC, k] = kinetic
                rec[s, REC_DIVERGENCE, k] = _f32(value)
                rec[s, REC_SPEED, k] = _f32(math.sqrt(speed))
                rec[s, REC_BOUND, k] = lipschitz_bound(theta, net, dvec[k])
                rec[s, REC_GAUGE, k] = _f32(gauge)
            if healthy:
                for lane in range(rank, LANES, nthreads):
                    p0, p1, g0, g1, _, _ = lane_spans(M, Gn, 0, lane)
                    Y[k, p0:p1] = y_new[p0:p1]
                    Gen[k, g0:g1] = y_new[M + g0 : M + g1]
                if lead:
                    t[k] += float(dt[k])
            else:
                live[k] = False
                if lead:
                    alive[k] = False
                    dead_step[k] = n
                    dead_time[k] = t[k]
                    dead_info[k, 0] = 1.0 if finite else 0.0
                    dead_info[k, 1] = gauge
        taken += 1
    return taken
