"""Studies built on many batched runs: :mod:`~gpa_core.studies.compare` (side by side),
:mod:`~gpa_core.studies.stability` (the (L, Δt) map, §6), :mod:`~gpa_core.studies.heavy_tails` (§7),
with :mod:`~gpa_core.studies.batches` (grouping and advancing members) and
:mod:`~gpa_core.studies.outcome` (how a run ended)."""
