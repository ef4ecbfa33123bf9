"""gpa_core: Lipschitz-regularized gradient flows and the generative particle algorithm (GPA).

Pure Python/Torch/NumPy (no Streamlit): usable from scripts, notebooks and ``python -m gpa_core``.
"""

from __future__ import annotations

from gpa_core.config import ConfigError, FlowConfig, authors_numerics, check_batch, parse_lipschitz
from gpa_core.engine.flow import GPAFlow, History, MemberSummary

__all__ = [
    "ConfigError",
    "FlowConfig",
    "GPAFlow",
    "History",
    "MemberSummary",
    "authors_numerics",
    "check_batch",
    "divergence",
    "parse_lipschitz",
]

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: keeps `import gpa_core` light
    if name == "divergence":
        from gpa_core.estimate import divergence

        return divergence
    raise AttributeError(name)
