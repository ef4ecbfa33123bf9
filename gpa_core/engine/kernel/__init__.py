"""The compiled CPU path of Algorithm 3.1: whole particle steps in one Numba-compiled call.

A small GPA step (Fig. 2–3: 2-D, M = N = 200, a 3×32 network, 3 inner Adam steps) is about
17 MFLOP spread over ~1300 tensor operations; run eagerly, per-operation overhead costs ten times
the arithmetic. Here one call advances a group of members by a chunk of particle steps — inner
training (forward, objective (3.2), hand-written backward, Adam, projection W ← L^{1/D} W/‖W‖),
the particle update (Euler, eq. (3.2); Heun, Remark 3.2), the divergence test and the recording.

The package, from the bottom up:

- :mod:`.codes`: the integers standing for the eager side's names (objectives, activations,
  projection modes, recorded fields), generated from the config's Literals and ``History.FIELDS``;
- :mod:`.jit`: how every kernel function is compiled, and the disk cache they share;
- :mod:`.simd`: the register kernels (8-wide LLVM vectors) for the matrix products;
- :mod:`.lanes`: a member's rows in fixed lanes, and the barrier of the threads sharing them;
- :mod:`.args`: the kernel's arguments as named tuples, and ``pack``, which builds them from a
  batch's FlowConfigs;
- :mod:`.step`: the stages of a step, each naming its eager twin and the paper's equation, and
  the whole-call entries (``prepare_members``, ``project_members``, ``advance_members``);
- :mod:`.engine`: ``CompiledEngine``, GPAFlow's ``Engine`` on this path;
- :mod:`.build`: the compile (in the background; from the disk cache after the first time);
- :mod:`.stages`: the stages one at a time, for the tests.

A seeded run repeats exactly, and a member runs bit for bit the same alone, in any batch and on any
number of threads. A step agrees with the eager path to float32 rounding; over a run, Adam's
normalisation can grow such differences to a learning-rate step on parameters whose gradient is
rounding noise, so long runs agree in their statistics, not digit by digit. The order of a sum is
fixed by the code only up to the CPU (vector width, FMA, the BLAS fallback's kernel), so two
machines agree to float32 rounding, not bit for bit.

This package holds the kernels and the compile state; ``GPAFlow`` decides which path runs.
"""

from __future__ import annotations

from gpa_core.engine.kernel.build import (
    available,
    cache_is_warm,
    compile_error,
    compile_seconds,
    ensure_compiled,
    ready,
    wait_briefly,
)
from gpa_core.engine.kernel.codes import unsupported
from gpa_core.engine.kernel.jit import AVAILABLE

if AVAILABLE:
    from gpa_core.engine.kernel import stages
    from gpa_core.engine.kernel.engine import CompiledEngine

__all__ = [
    "CompiledEngine",
    "available",
    "cache_is_warm",
    "compile_error",
    "compile_seconds",
    "ensure_compiled",
    "ready",
    "stages",
    "unsupported",
    "wait_briefly",
]
