"""The integers the compiled kernel uses for the eager side's names, generated from the names.

Compiled code cannot branch on strings, so each choice of a FlowConfig is a small integer here: an
objective (f, and for KL its form and numerics), an activation, a projection mode, and the index of
each recorded field in the kernel's record array. Each table numbers the eager side's own list in
its own order — the Literal types of :mod:`gpa_core.config`, the ``ObjectiveKind``s they allow, and
``History.FIELDS`` — so nothing is kept "in the same order" by hand.

The kernel's branches name the entries they handle (``HANDLED_*``), by name, so the order never
matters. A choice the eager side gains before the kernel learns it gets a code but no branch:
:func:`unsupported` says so, and a member that uses it runs eagerly (the kernel-vs-eager tests, which
go through every eager objective, fail until the kernel learns it); a recorded field it does not
write stays NaN. A name the kernel handles and the eager side no longer has fails at import.
(Numba compiles these module globals in as constants; a change of any table changes the disk cache's
stamp, see :mod:`~gpa_core.engine.kernel.jit`.)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar, get_args

from gpa_core.algorithm.divergences import ObjectiveKind
from gpa_core.config import Activation, FlowConfig, FName, KLForm, LipschitzMode
from gpa_core.engine.flow import History, objective_kind, projection_mode

T = TypeVar("T", bound=Hashable)


def _numbered(values: Iterable[T]) -> dict[T, int]:
    return {value: code for code, value in enumerate(values)}


def _codes(table: dict[T, int], handled: tuple[T, ...]) -> tuple[int, ...]:
    """The codes of the entries the kernel ``handled``, which the eager side must still have."""
    gone = [str(name) for name in handled if name not in table]
    if gone:
        raise ImportError(f"the compiled kernel handles {gone}, which the eager side no longer has")
    return tuple(table[name] for name in handled)


def _objective_kinds() -> tuple[ObjectiveKind, ...]:
    """Every objective a FlowConfig can ask for: each f of ``config.FName``; for KL each form of
    ``config.KLForm``, and for its Donsker–Varadhan form both numerics (``logsumexp``)."""
    kinds = []
    for f in get_args(FName):
        forms = get_args(KLForm) if f == "kl" else ("lt",)
        for form in forms:
            numerics = (True, False) if form == "dv" else (True,)
            kinds += [ObjectiveKind(f, form, logsumexp) for logsumexp in numerics]
    return tuple(kinds)


#: objective → code, one per ObjectiveKind (divergences.objective evaluates each eagerly)
OBJECTIVE_CODES: dict[ObjectiveKind, int] = _numbered(_objective_kinds())
HANDLED_OBJECTIVES = (
    ObjectiveKind("kl", "lt"),
    ObjectiveKind("kl", "dv", True),
    ObjectiveKind("kl", "dv", False),
    ObjectiveKind("alpha"),
    ObjectiveKind("reverse_kl"),
    ObjectiveKind("js"),
)
KL_LT, KL_DV, KL_DV_NAIVE, ALPHA, REVERSE_KL, JS = _codes(OBJECTIVE_CODES, HANDLED_OBJECTIVES)
#: per objective code: is ν trained (``ObjectiveKind.trained_nu``; else eliminated or absorbed)
TRAINED_NU: tuple[bool, ...] = tuple(kind.trained_nu for kind in OBJECTIVE_CODES)

#: activation of the hidden layers (``config.Activation``; discriminator.activation) → code
ACTIVATION_CODES: dict[str, int] = _numbered(get_args(Activation))
HANDLED_ACTIVATIONS = ("relu", "leaky_relu", "softplus", "smooth_relu")
RELU, LEAKY_RELU, SOFTPLUS, SMOOTH_RELU = _codes(ACTIVATION_CODES, HANDLED_ACTIVATIONS)

#: how W is projected (``config.LipschitzMode``, as ``flow.projection_mode`` reads it) → code.
#: "penalty" members are left unprojected, as eagerly; their gradient penalty needs autograd, so a
#: flow with one (and a finite L) never takes the compiled path.
LIPSCHITZ_CODES: dict[str, int] = _numbered(get_args(LipschitzMode))
HANDLED_PROJECTIONS = ("spectral", "frobenius", "penalty", "none")
LIP_SPECTRAL, LIP_FROBENIUS, LIP_PENALTY, LIP_NONE = _codes(LIPSCHITZ_CODES, HANDLED_PROJECTIONS)

#: recorded field (``History.FIELDS``) → its index in the kernel's record array rec[step, field, member]
RECORD_CODES: dict[str, int] = _numbered(History.FIELDS)
RECORDED = ("time", "kinetic_energy", "divergence", "max_speed", "lipschitz_bound", "max_exp_arg")
REC_TIME, REC_KINETIC, REC_DIVERGENCE, REC_SPEED, REC_BOUND, REC_GAUGE = _codes(RECORD_CODES, RECORDED)

#: every table compiled into the kernel, for the disk cache's stamp
TABLES = (OBJECTIVE_CODES, ACTIVATION_CODES, LIPSCHITZ_CODES, RECORD_CODES)


def canonical(kind: ObjectiveKind) -> ObjectiveKind:
    """The objective as the tables name it (``logsumexp`` counts only for the Donsker–Varadhan form)."""
    return kind if kind.kl_form == "dv" else ObjectiveKind(kind.f, kind.kl_form)


def objective_code(kind: ObjectiveKind) -> int:
    """The kernel's integer for an eager objective (an ``ObjectiveKind`` of ``algorithm.divergences``)."""
    return OBJECTIVE_CODES[canonical(kind)]


def unsupported(config: FlowConfig) -> str | None:
    """Why the kernel cannot run a member with this configuration — a choice the eager side has and
    the kernel has not learnt — or None."""
    kind = canonical(objective_kind(config))
    if kind not in HANDLED_OBJECTIVES:
        return f"the compiled kernel has no objective {kind}"
    for name in (config.activation, config.last_activation):
        if name is not None and name not in HANDLED_ACTIVATIONS:
            return f"the compiled kernel has no {name} activation"
    if projection_mode(config) not in HANDLED_PROJECTIONS:
        return f"the compiled kernel has no {projection_mode(config)} projection"
    return None
