"""The L-Lipschitz discriminator φ of Algorithm 3.1, for a batch of K independent networks.

All K networks share a shape (d → hidden… → 1) but not their weights. Their parameters live in
one flat (K, P) buffer (weights, biases, then the scalar ν of eq. (3.2)), so that one Adam update
and one projection serve every member. Forward and backward passes are written out by hand with
batched matrix products: a small MLP is dominated by per-operation overhead, and autograd would
roughly double the number of operations. ``autograd_loss_grad`` recomputes the same gradient with
torch.autograd; the tests check that both agree.

Lipschitz projection (Algorithm 3.1, lines 4 and 9): W_l ← L^{1/D} W_l / ‖W_l‖ for l = 1..D, with
‖·‖ the spectral norm (power iteration with persistent vectors, as in spectral normalization [43]),
the Frobenius norm (the authors' code), or none. Since each activation has slope ≤ 1, the
network is then ∏_l ‖W_l‖₂ ≤ L Lipschitz.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

LEAKY_SLOPE = 0.01
WARM_UP_ITERATIONS = 30  # power iterations that settle the start vectors before the first projection
SMOOTH_RELU_WIDTH = 0.5  # ε of the C² smoothed ReLU


def activation(name: str, z: Tensor) -> Tensor:
    """σ(z) for the supported activations (all with slope in [0, 1])."""
    if name == "relu":
        return torch.relu(z)
    if name == "leaky_relu":
        return torch.nn.functional.leaky_relu(z, LEAKY_SLOPE)
    if name == "softplus":
        return torch.nn.functional.softplus(z)
    if name == "smooth_relu":
        # C² smoothed ReLU (paper Remark 3.2): σ' is the smoothstep 3u² - 2u³ on u = z/ε ∈ [0, 1].
        u = (z / SMOOTH_RELU_WIDTH).clamp(0.0, 1.0)
        inner = SMOOTH_RELU_WIDTH * (u**3 - 0.5 * u**4)
        return torch.where(z >= SMOOTH_RELU_WIDTH, z - 0.5 * SMOOTH_RELU_WIDTH, inner)
    raise ValueError(f"unknown activation {name!r}")


def activation_prime(name: str, z: Tensor) -> Tensor:
    """σ'(z), in [0, 1] for every supported activation."""
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "leaky_relu":
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, LEAKY_SLOPE))
    if name == "softplus":
        return torch.sigmoid(z)
    if name == "smooth_relu":
        u = (z / SMOOTH_RELU_WIDTH).clamp(0.0, 1.0)
        return u * u * (3.0 - 2.0 * u)
    raise ValueError(f"unknown activation {name!r}")


@dataclass
class ForwardCache:
    """What the backward pass needs: the input, pre-activations z_l and activations a_l."""

    inputs: Tensor
    pre: list[Tensor]
    post: list[Tensor]
    phi: Tensor  # (K, n)


class BatchedMLP:
    """K multilayer perceptrons φ_k: ℝ^d → ℝ evaluated together on (K, n, d) inputs."""

    def __init__(
        self,
        K: int,
        d: int,
        hidden: Sequence[int],
        activations: Sequence[str],
        seeds: Sequence[int],
        *,
        init: str = "uniform",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        warm_up: bool = True,
    ) -> None:
        """``warm_up=False`` leaves the power-iteration vectors at their random unit start (the
        compiled path warms them member by member, see ``kernel.step.prepare_members``)."""
        if len(seeds) != K:
            raise ValueError(f"need one seed per member: K = {K}, got {len(seeds)} seeds")
        if len(activations) != len(hidden):
            raise ValueError("need one activation per hidden layer")
        self.K, self.d = K, d
        self.widths = [d, *hidden, 1]
        self.activations = list(activations)
        self.device, self.dtype = torch.device(device), dtype
        shapes = [(self.widths[i + 1], self.widths[i]) for i in range(len(self.widths) - 1)]
        n_w = sum(o * i for o, i in shapes)
        n_b = sum(o for o, _ in shapes)
        self.n_params = n_w + n_b + 1
        self.flat = torch.zeros(K, self.n_params, device=self.device, dtype=dtype)
        self.grad = torch.zeros_like(self.flat)
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        self.weight_grads: list[Tensor] = []
        self.bias_grads: list[Tensor] = []
        offset = 0
        #: where each layer's weights (row-major o × i) and biases start in a row of ``flat``
        self.weight_offsets: list[int] = []
        self.bias_offsets: list[int] = []
        for o, i in shapes:
            self.weight_offsets.append(offset)
            self.weights.append(self.flat[:, offset : offset + o * i].view(K, o, i))
            self.weight_grads.append(self.grad[:, offset : offset + o * i].view(K, o, i))
            offset += o * i
        for o, _ in shapes:
            self.bias_offsets.append(offset)
            self.biases.append(self.flat[:, offset : offset + o])
            self.bias_grads.append(self.grad[:, offset : offset + o])
            offset += o
        self.nu = self.flat[:, offset]
        self.nu_grad = self.grad[:, offset]
        self.weight_slice = slice(0, n_w)
        # persistent right-singular-vector estimates for the power iteration, one per layer, as
        # (K, i_l, 1) views of one (K, Σ i_l) buffer (the compiled path reads the flat buffer)
        self.vector_offsets = [0]
        for _, i in shapes:
            self.vector_offsets.append(self.vector_offsets[-1] + i)
        self.power_flat = torch.zeros(K, self.vector_offsets[-1], device=self.device, dtype=dtype)
        self.diagnostic_flat = torch.zeros_like(self.power_flat)
        self.power_vectors = self._vector_views(self.power_flat)
        self.diagnostic_vectors = self._vector_views(self.diagnostic_flat)
        self._initialize(seeds, init, warm_up)

    def _vector_views(self, buffer: Tensor) -> list[Tensor]:
        offs = self.vector_offsets
        return [buffer[:, offs[layer] : offs[layer + 1]].unsqueeze(-1) for layer in range(len(offs) - 1)]

    # -- set-up ------------------------------------------------------------------------------
    def _initialize(self, seeds: Sequence[int], init: str, warm_up: bool) -> None:
        for k, seed in enumerate(seeds):
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            for W, b in zip(self.weights, self.biases, strict=True):
                fan_in = W.shape[2]
                if init == "he_normal":  # the authors' code: He-normal weights, zero biases
                    w = torch.randn(W.shape[1:], generator=gen, dtype=torch.float64) * math.sqrt(2.0 / fan_in)
                    bias = torch.zeros(b.shape[1:], dtype=torch.float64)
                else:  # torch.nn.Linear's default: U(-1/√fan_in, 1/√fan_in) for weights and biases
                    bound = 1.0 / math.sqrt(fan_in)
                    w = (torch.rand(W.shape[1:], generator=gen, dtype=torch.float64) * 2 - 1) * bound
                    bias = (torch.rand(b.shape[1:], generator=gen, dtype=torch.float64) * 2 - 1) * bound
                W[k] = w.to(self.dtype)
                b[k] = bias.to(self.dtype)
        # each member's power-iteration start vectors come from its own seed, so a member runs the
        # same alone as inside any batch
        gens = [torch.Generator(device="cpu").manual_seed(int(seed) + 7919) for seed in seeds]
        for layer, W in enumerate(self.weights):
            v = torch.stack([torch.randn(W.shape[2], 1, generator=g, dtype=torch.float64) for g in gens])
            v = v.to(self.device, self.dtype)
            self.power_vectors[layer].copy_(v / v.norm(dim=1, keepdim=True))
        if warm_up:
            self.spectral_norms(iterations=WARM_UP_ITERATIONS)
        # separate vectors for the recorded bound, so diagnostics never change the projection
        self.diagnostic_flat.copy_(self.power_flat)

    @property
    def depth(self) -> int:
        return len(self.weights)

    # -- norms and projection ---------------------------------------------------------------------
    def spectral_norms(
        self, iterations: int = 1, *, vectors: list[Tensor] | None = None, update: Tensor | None = None
    ) -> Tensor:
        """σ_max(W_l) per member and layer, (K, D), by warm-started power iteration.

        ``vectors`` are the persistent start vectors to use and refresh (the projection's by
        default); with an ``update`` (K,) mask only those members' vectors are refreshed."""
        vectors = self.power_vectors if vectors is None else vectors
        sigmas = []
        for layer, W in enumerate(self.weights):
            if min(W.shape[1], W.shape[2]) == 1:  # a row or column vector: σ_max = ‖w‖ exactly
                sigmas.append(W.flatten(1).norm(dim=1))
                continue
            v = vectors[layer]
            for _ in range(iterations):
                u = torch.nn.functional.normalize(torch.bmm(W, v), dim=1, eps=1e-30)
                v = torch.bmm(W.transpose(1, 2), u)
                sigma = v.norm(dim=1, keepdim=True)
                v = v / sigma.clamp_min(1e-30)
            fresh = v if update is None else torch.where(update[:, None, None], v, vectors[layer])
            vectors[layer].copy_(fresh)
            sigmas.append(sigma.reshape(self.K))
        return torch.stack(sigmas, dim=1)

    def exact_spectral_norms(self) -> Tensor:
        """σ_max(W_l) by SVD, (K, D) — exact, for diagnostics and tests."""
        return torch.stack([torch.linalg.matrix_norm(W, ord=2) for W in self.weights], dim=1)

    def frobenius_norms(self) -> Tensor:
        """‖W_l‖_F of every layer of every member, (K, D) (the authors' projection divides by it)."""
        return torch.stack([W.flatten(1).norm(dim=1) for W in self.weights], dim=1)

    def project(
        self,
        layer_scale: Tensor,
        use_spectral: Tensor,
        use_frobenius: Tensor,
        power_iterations: int,
        *,
        all_spectral: bool | None = None,
        members: Tensor | None = None,
    ) -> None:
        """W_l ← c W_l / ‖W_l‖ with c = L^{1/D} (Algorithm 3.1, line 9), per member.

        ``layer_scale`` is (K,) = L_k^{1/D}; ``use_spectral``/``use_frobenius`` are (K,) masks;
        members with neither are left unprojected (L = ∞ or a gradient penalty). ``all_spectral``
        (every member spectral, known to the caller) skips the masks; with a ``members`` (K,) mask
        only those members are projected (Heun's corrector for the members that use it)."""
        if all_spectral is None:
            all_spectral = bool(use_spectral.all())
        if all_spectral:
            sigma = self.spectral_norms(power_iterations, update=members)
            factor = layer_scale[:, None] / sigma.clamp_min(1e-30)
        else:
            norms = torch.zeros(self.K, self.depth, device=self.device, dtype=self.dtype)
            if bool(use_spectral.any()):
                refresh = use_spectral if members is None else use_spectral & members
                sigma = self.spectral_norms(power_iterations, update=refresh)
                norms = torch.where(use_spectral[:, None], sigma, norms)
            if bool(use_frobenius.any()):
                norms = torch.where(use_frobenius[:, None], self.frobenius_norms(), norms)
            projected = use_spectral | use_frobenius
            if members is not None:
                projected = projected & members
            factor = torch.where(
                projected[:, None], layer_scale[:, None] / norms.clamp_min(1e-30), torch.ones_like(norms)
            )
        if all_spectral and members is not None:
            factor = torch.where(members[:, None], factor, torch.ones_like(factor))
        for layer, W in enumerate(self.weights):
            W.mul_(factor[:, layer, None, None])

    def lipschitz_bound(self) -> Tensor:
        """The realized bound ∏_l σ_max(W_l) per member (K,), by one warm-started power iteration."""
        return self.spectral_norms(iterations=1, vectors=self.diagnostic_vectors).prod(dim=1)

    # -- forward and backward ---------------------------------------------------------------
    def forward(self, x: Tensor) -> ForwardCache:
        """φ at x (K, n, d) → cache with φ of shape (K, n)."""
        pre: list[Tensor] = []
        post: list[Tensor] = [x]
        h = x
        last = self.depth - 1
        for layer, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.bmm(h, W.transpose(1, 2)).add_(b.unsqueeze(1))
            if layer == last:
                return ForwardCache(x, pre, post, z.squeeze(-1))
            pre.append(z)
            h = activation(self.activations[layer], z)
            post.append(h)
        raise AssertionError("unreachable")

    def backward(
        self, cache: ForwardCache, d_phi: Tensor, *, weights: bool = True, inputs: bool = False
    ) -> Tensor | None:
        """Back-propagate d_phi = ∂loss/∂φ (K, n): parameter gradients into ``self.grad`` (if
        ``weights``) and, if ``inputs``, return ∂loss/∂x (K, n, d) — with d_phi = 1 that is ∇φ."""
        g = d_phi.unsqueeze(-1)  # (K, n, 1)
        for layer in range(self.depth - 1, -1, -1):
            if weights:
                torch.bmm(g.transpose(1, 2), cache.post[layer], out=self.weight_grads[layer])
                torch.sum(g, dim=1, out=self.bias_grads[layer])
            if layer == 0 and not inputs:
                return None
            g = torch.bmm(g, self.weights[layer])
            if layer > 0:
                z = cache.pre[layer - 1]
                if self.activations[layer - 1] == "relu":
                    g = torch.ops.aten.threshold_backward(g, z, 0.0)
                else:
                    g = g * activation_prime(self.activations[layer - 1], z)
        return g

    def gradient(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(φ(x), ∇φ(x)) for x of shape (K, n, d)."""
        cache = self.forward(x)
        grad = self.backward(cache, torch.ones_like(cache.phi), weights=False, inputs=True)
        assert grad is not None
        return cache.phi, grad

    # -- functional version for autograd (gradient penalty, tests) ----------------------------
    def functional_phi(self, flat: Tensor, x: Tensor) -> Tensor:
        """φ(x) computed from a flat parameter tensor with autograd-tracked ops."""
        offset, h = 0, x
        shapes = [(W.shape[1], W.shape[2]) for W in self.weights]
        ws = []
        for o, i in shapes:
            ws.append(flat[:, offset : offset + o * i].reshape(self.K, o, i))
            offset += o * i
        bs = []
        for o, _ in shapes:
            bs.append(flat[:, offset : offset + o])
            offset += o
        for layer, (W, b) in enumerate(zip(ws, bs, strict=True)):
            h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
            if layer < self.depth - 1:
                h = activation(self.activations[layer], h)
        return h.squeeze(-1)


class BatchedAdam:
    """Adam on a (K, P) buffer with a per-member learning rate and step count.

    Each member's row is one parameter tensor of torch's fused Adam kernel (one call per distinct
    learning rate), so a step costs one dispatch however large K is; ``members`` restricts a step
    to some members (Heun's corrector for the members that use it)."""

    def __init__(
        self, params: Tensor, lr: Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.params = params
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        self.m = torch.zeros_like(params)
        self.v = torch.zeros_like(params)
        K = params.shape[0]
        self.t = torch.zeros(K, device=params.device, dtype=torch.float32)
        self._steps = [self.t[k] for k in range(K)]
        self._rows = [(params[k], self.m[k], self.v[k]) for k in range(K)]
        self.set_lr(lr)

    def set_lr(self, lr: Tensor) -> None:
        """One learning rate per member, ``lr`` of shape (K,) (the live ``lr`` field)."""
        self.lr = [float(x) for x in lr.reshape(-1).tolist()]

    def reset(self) -> None:
        """Zero the moments and step counts of every member (``optimizer_state = "reset"``)."""
        self.m.zero_()
        self.v.zero_()
        self.t.zero_()

    def step(self, grad: Tensor, members: Sequence[int] | None = None) -> None:
        """One descent step on ``grad`` (the gradient of the loss) for ``members`` (all if None)."""
        chosen = range(len(self._rows)) if members is None else members
        groups: dict[float, list[int]] = {}
        for k in chosen:
            groups.setdefault(self.lr[k], []).append(k)
        for lr, ks in groups.items():
            params = [self._rows[k][0] for k in ks]
            steps = [self._steps[k] for k in ks]
            torch._foreach_add_(steps, 1.0)
            torch._fused_adam_(
                params,
                [grad[k] for k in ks],
                [self._rows[k][1] for k in ks],
                [self._rows[k][2] for k in ks],
                [],
                steps,
                amsgrad=False,
                lr=lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )
