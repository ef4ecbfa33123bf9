"""The paper's algorithm in eager Torch, the specification both engines follow.

- :mod:`~gpa_core.algorithm.divergences` — f, f*, ν and the variational objective (eqs. 1.4, 3.2);
- :mod:`~gpa_core.algorithm.discriminator` — the batched L-Lipschitz network φ and its optimizer;
- :mod:`~gpa_core.algorithm.solvers` — the time integrators of the particle ODE (eq. 1.10).

Running them is :mod:`gpa_core.engine`'s job; estimating D_f^{Γ_L}(P‖Q) between two samples is
:func:`gpa_core.estimate.divergence`.
"""
