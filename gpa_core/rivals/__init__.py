"""Rival particle flows on the same data as GPA, for comparison: the MMD gradient flow and the
Sinkhorn-divergence flow (:mod:`~gpa_core.rivals.flow`), and a background runner for them."""
