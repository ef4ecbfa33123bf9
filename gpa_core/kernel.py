"""The compiled CPU path of Algorithm 3.1: whole particle steps in one Numba-compiled call.

A small GPA step (Fig. 2–3: 2-D, M = N = 200, a 3×32 network, 3 inner Adam steps) is about
17 MFLOP spread over ~1300 tensor operations; run eagerly, per-operation overhead costs ten times
the arithmetic. Here one call advances a group of members by a chunk of particle steps — inner
training (forward, objective (3.2), hand-written backward, Adam, projection W ← L^{1/D} W/‖W‖),
the particle update (Euler, eq. (3.2); Heun, Remark 3.2), the divergence test and the recording.
Matrix products go to BLAS (layers with a few inputs, as for 2-D data, to a loop); each layer's
bias and activation is one vectorized pass, into buffers allocated once per call. Members are
independent, so a batch is split over threads with no synchronisation.

The arithmetic is the eager path's, in float32 (sums accumulate in float64), and overflow stays an
outcome: e^{φ-ν-1} beyond float32's range becomes +∞ exactly as it does eagerly. A step agrees with
the eager path to float32 rounding; over a run, Adam's normalisation can grow such differences to a
learning-rate step on parameters whose gradient is rounding noise, so long runs agree in their
statistics, not digit by digit. A seeded run repeats exactly on either path, and on this one a member
runs bit for bit the same alone as in any batch.

This module holds the kernels and the compile state only; ``GPAFlow`` decides which path runs.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

try:  # in requirements.txt; where it cannot be imported, the eager path is the only one
    import numba
    from numba import njit
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

SMALL_INPUT = 8  # layers with at most this many inputs multiply in a loop rather than in BLAS
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
    def _forward(theta, widths, w_off, b_off, acts, Z, ws):
        """φ's network output V at the rows of Z (n, d), with the pre-activations and the layer
        inputs (Z first) kept for the backward pass. Products go to BLAS; bias and activation
        are one pass over each layer's output. Outputs live in the workspace ``ws``."""
        pre_buf, post_buf, _, _, _, v_buf = ws
        D = widths.shape[0] - 1
        n = Z.shape[0]
        pres = List()
        posts = List()
        posts.append(Z)
        h = Z
        off = 0
        for layer in range(D - 1):
            i = widths[layer]
            o = widths[layer + 1]
            W = theta[w_off[layer] : w_off[layer] + o * i].reshape((o, i))
            b = theta[b_off[layer] : b_off[layer] + o]
            z = pre_buf[off : off + n * o].reshape((n, o))
            a = post_buf[off : off + n * o].reshape((n, o))
            off += n * o
            if i <= SMALL_INPUT:  # a few input columns (2-D data): one pass beats a BLAS call
                WT = np.ascontiguousarray(W.T)
                for r in range(n):
                    for j in range(o):
                        z[r, j] = 0.0
                    for c in range(i):
                        x = h[r, c]
                        for j in range(o):
                            z[r, j] += x * WT[c, j]
            else:
                np.dot(h, W.T, z)
            code = acts[layer]
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
            pres.append(z)
            posts.append(a)
            h = a
        last = D - 1
        w = theta[w_off[last] : w_off[last] + widths[last]]
        V = v_buf[:n]
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
            grad[w_off[last] : w_off[last] + i] = np.dot(dv, posts[last][:n])
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
            for r in range(n):
                for c in range(i):
                    g[r, c] = dv[r] * w[c] if z[r, c] > 0 else _f32(0.0)
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
                if i <= SMALL_INPUT:
                    dWT = np.zeros((i, o), dtype=np.float32)
                    for r in range(n):
                        for c in range(i):
                            x = h[r, c]
                            for j in range(o):
                                dWT[c, j] += x * g[r, j]
                    dW = np.ascontiguousarray(dWT.T)
                else:
                    dW = np.dot(g.T, h[:n])
                grad[w_off[layer] : w_off[layer] + o * i] = dW.reshape(o * i)
                db = np.zeros(o, dtype=np.float32)
                for r in range(n):
                    for j in range(o):
                        db[j] += g[r, j]
                grad[b_off[layer] : b_off[layer] + o] = db
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
                    np.dot(g, W, gin)
                return gin
            gn = gn_buf[: n * i].reshape((n, i))
            np.dot(g, W, gn)
            code = acts[layer - 1]
            z = pres[layer - 1]
            if code == RELU:
                for r in range(n):
                    for c in range(i):
                        gn[r, c] = gn[r, c] if z[r, c] > 0 else _f32(0.0)
            else:
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
    def _objective(code, alpha, nu, V, p0, m, q0, nq, dV):
        """J(φ, ν) of eq. (1.4) from outputs V at P rows [p0, p0+m) and Q rows [q0, q0+nq); writes
        dV = ∂(-J)/∂V on those rows; returns (J, ∂J/∂ν, the overflow gauge max of f*'s argument)."""
        sp = 0.0
        if code == REVERSE_KL or code == JS:
            for r in range(p0, p0 + m):
                phi, slope = _out_map(code, V[r])
                sp += phi
                dV[r] = -slope / _f32(m)
        else:
            for r in range(p0, p0 + m):
                sp += V[r]
                dV[r] = _f32(-1.0 / m)
        mean_p = sp / m
        gauge = -np.inf
        if code == KL_DV or code == KL_DV_NAIVE:
            vmax = -np.inf
            for r in range(q0, q0 + nq):
                vmax = max(vmax, float(V[r]))
            gauge = vmax
            if code == KL_DV:
                s = 0.0
                for r in range(q0, q0 + nq):
                    s += math.exp(V[r] - vmax)
                for r in range(q0, q0 + nq):
                    dV[r] = _f32(math.exp(V[r] - vmax) / s)
                return mean_p - (vmax + math.log(s) - math.log(nq)), 0.0, gauge
            total = 0.0
            for r in range(q0, q0 + nq):
                total += _f32(math.exp(V[r]))  # float32 e^φ: +∞ beyond φ ≈ 88.7, as eagerly
            total32 = _f32(total)
            for r in range(q0, q0 + nq):
                dV[r] = _f32(math.exp(V[r])) / total32
            return mean_p - math.log(total32 / nq), 0.0, gauge
        sf = 0.0
        sr = 0.0
        a = alpha
        for r in range(q0, q0 + nq):
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
        if code == KL_LT or code == ALPHA:
            return mean_p - nu - sf / nq, sr / nq - 1.0, gauge
        return mean_p - sf / nq, 0.0, gauge

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
    def _train(k, Z, M, theta, grad, adam, net, pvec, member, dV, ws):
        """m_max Adam steps on (W, ν) at Z = [particles; target] (Algorithm 3.1, lines 6–10).

        ``adam`` = (m, v, steps, β₁, β₂, ε); ``net`` = (widths, w_off, b_off, v_off, activations);
        ``member`` = (objective code, α, lr, Lipschitz mode, L^{1/D}, m_max, power iterations)."""
        mom, vel, tstep, beta1, beta2, eps = adam
        widths, w_off, b_off, v_off, acts = net
        code, alpha, lr, lip, scale, inner, power_its = member
        P = theta.shape[0]
        trained_nu = code == KL_LT or code == ALPHA
        n = Z.shape[0]
        for _ in range(inner):
            V, pres, posts = _forward(theta, widths, w_off, b_off, acts, Z, ws)
            nu = theta[P - 1]
            _, d_nu, _ = _objective(code, alpha, nu, V, 0, M, M, n - M, dV)
            _backward(theta, grad, widths, w_off, b_off, acts, pres, posts, dV, n, True, False, ws)
            grad[P - 1] = _f32(-d_nu) if trained_nu else _f32(0.0)
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
    ):
        """Advance ``members`` by up to ``n_steps`` particle steps from global step n0.

        Per step and member: train φ (with the Adam reset if asked), evaluate (φ, ∇φ) at particles,
        generated points and target, move (Euler, or Heun with φ retrained at the predictor), test
        for non-finite values and runaways, and record into rec[step, field, member] every
        ``record_every`` steps (NaN where a member is inactive). Returns the steps taken."""
        M, d = Y.shape[1], Y.shape[2]
        Gn = Gen.shape[1]
        N = X.shape[1]
        P = theta.shape[1]
        n_eval = M + Gn + N
        n_move = M + Gn
        adam = (mom, vel, tstep, beta1, beta2, eps)
        net = (widths, w_off, b_off, v_off, acts)
        Z = np.empty((n_eval, d), dtype=np.float32)  # [particles; generated; target]
        Zt = np.empty((M + N, d), dtype=np.float32)  # [particles; target], for training
        dV = np.empty(n_eval, dtype=np.float32)
        grad = np.empty(P, dtype=np.float32)
        ws = _workspace(widths, n_eval)
        v1 = np.empty((n_move, d), dtype=np.float32)
        y_new = np.empty((n_move, d), dtype=np.float32)
        taken = 0
        for s in range(n_steps):
            n = n0 + s
            any_active = False
            for k in members:
                if alive[k] and n < steps_limit[k]:
                    any_active = True
            if not any_active:
                break
            record = n % record_every == 0
            for k in members:
                if record:
                    for fld in range(6):
                        rec[s, fld, k] = np.nan
                if not (alive[k] and n < steps_limit[k]):
                    continue
                theta_k = theta[k]
                code = codes[k]
                member = (code, alpha[k], lr[k], lip[k], scale[k], inner, power_its)
                if reset_adam:
                    mom[k, :] = 0.0
                    vel[k, :] = 0.0
                    tstep[k] = 0.0
                # stage 0: train at Y, then (φ, ∇φ) at [Y; generated; X]
                Zt[:M] = Y[k]
                Zt[M:] = X[k]
                _train(k, Zt, M, theta_k, grad, adam, net, pvec[k], member, dV, ws)
                Z[:M] = Y[k]
                Z[M:n_move] = Gen[k]
                Z[n_move:] = X[k]
                V, pres, posts = _forward(theta_k, widths, w_off, b_off, acts, Z, ws)
                value, _, gauge = _objective(code, alpha[k], theta_k[P - 1], V, 0, M, n_move, N, dV)
                G_in = _field(code, theta_k, grad, widths, w_off, b_off, acts, V, pres, posts, n_move, dV, ws)
                kinetic = 0.0
                speed = 0.0
                for r in range(n_move):
                    sq = 0.0
                    for c in range(d):
                        v1[r, c] = -G_in[r, c]
                        sq += G_in[r, c] * G_in[r, c]
                    if r < M:
                        kinetic += sq
                        speed = max(speed, sq)
                kinetic32 = _f32(kinetic / M)
                h = dt[k]
                for r in range(n_move):
                    for c in range(d):
                        y_new[r, c] = Z[r, c] + h * v1[r, c]
                if heun[k]:
                    # Remark 3.2: retrain φ at the predictor, average the two velocities
                    Zt[:M] = y_new[:M]
                    _train(k, Zt, M, theta_k, grad, adam, net, pvec[k], member, dV, ws)
                    V, pres, posts = _forward(theta_k, widths, w_off, b_off, acts, y_new, ws)
                    G_in = _field(
                        code, theta_k, grad, widths, w_off, b_off, acts, V, pres, posts, n_move, dV, ws
                    )
                    half = _f32(0.5) * h
                    for r in range(n_move):
                        y0 = Y[k, r] if r < M else Gen[k, r - M]
                        for c in range(d):
                            y_new[r, c] = y0[c] + half * (v1[r, c] - G_in[r, c])
                finite = math.isfinite(value) and math.isfinite(kinetic32)
                extent = 0.0
                for r in range(n_move):
                    for c in range(d):
                        x = y_new[r, c]
                        if not math.isfinite(x):
                            finite = False
                        extent = max(extent, abs(float(x)))
                healthy = finite and not extent > runaway[k]
                if record:
                    rec[s, REC_TIME, k] = t[k]
                    rec[s, REC_KINETIC, k] = kinetic32
                    rec[s, REC_DIVERGENCE, k] = _f32(value)
                    rec[s, REC_SPEED, k] = _f32(math.sqrt(speed))
                    rec[s, REC_BOUND, k] = _lipschitz_bound(theta_k, widths, w_off, dvec[k], v_off)
                    rec[s, REC_GAUGE, k] = _f32(gauge)
                if healthy:
                    Y[k] = y_new[:M]
                    Gen[k] = y_new[M:]
                    t[k] += float(h)
                else:
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
    )
