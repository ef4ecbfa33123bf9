"""The guided lessons (pages/lessons.py): a few sentences, an equation, a question to look at, and
buttons that load a run into the playground and start it. Pure Python (no Streamlit): the page draws
them, and :func:`playground_request` builds what the playground reads from
``st.session_state["playground_request"]`` (the settings as link parameters, plus ``generated``,
``speed`` and ``play``; see pages/playground.py).

A lesson's run is one of the paper's presets (``assets/presets``), one of its members, and a few
changes to the playground's settings; or a comparison (a preset run on the compare page, GPA beside the
rival flows); or, for a lesson about another page, that page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpa_core.data.presets import get_preset
from ui import playground_state

#: The page a lesson about the exact divergence opens (written by another part of the app).
DIVERGENCE_LAB = "pages/divergence_lab.py"
#: The page a lesson's comparison opens, and the session-state key it reads (pages/compare.py).
COMPARE = "pages/compare.py"
COMPARE_REQUEST = "compare_request"


@dataclass(frozen=True)
class LessonRun:
    """One button: ``preset`` (its ``member``) with ``changes`` to the playground's settings (keys of
    ``ui.playground_state``), ``generated`` points and the playground's ``speed`` (steps per frame)."""

    label: str
    preset: str
    member: int = 0
    changes: Mapping[str, Any] = field(default_factory=dict)
    generated: int = 0
    speed: int | str = 5


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    text: str  # a few sentences (Markdown)
    equation: str  # LaTeX, for st.latex
    question: str
    runs: tuple[LessonRun, ...] = ()
    page: str | None = None  # a lesson about another page opens it instead of a run
    #: buttons that open the compare page with a preset and start it: (label, preset id)
    comparisons: tuple[tuple[str, str], ...] = ()


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        id="cfl",
        title="L is a speed limit (CFL)",
        text=(
            "Every particle moves along −∇φ, and φ is L-Lipschitz, so no particle can move farther than "
            "LΔt in one step: L is a speed limit, and LΔt against the spacing of the data is the CFL "
            "number of §6. With L = 1 the particles of the Fig. 2–3 run slow down and stop at the four "
            "wells; with no bound (L = ∞) nothing limits the step."
        ),
        equation=r"Y_{n+1} = Y_n - \Delta t\,\nabla\phi_n^{L,*}(Y_n), \qquad |Y_{n+1}-Y_n| \le L\,\Delta t",
        question=(
            "In the stability table, does max|∇φ| / L stay at or below 1? Compare the kinetic energy "
            "curve of L = 1 with L = ∞: which one falls and which one keeps the particles moving fast?"
        ),
        runs=(
            LessonRun("Run with L = 1", "fig2-3-mixture", 0),
            LessonRun("Run with L = ∞", "fig2-3-mixture", 3),
        ),
    ),
    Lesson(
        id="heavy-tails",
        title="KL vs α on heavy tails",
        text=(
            "The target is a Student-t with ν = 0.5: its tails are so heavy that it has no mean. The KL "
            "objective has the exponential f* (y) = e^{y−1}, which a few far target points make blow up; "
            "the α-divergence's f* grows only polynomially (§7, Fig. 4: KL collapsed near t = 202, "
            "α = 2 and α = 10 ran stably)."
        ),
        equation=(
            r"f_{KL}(x) = x\log x, \qquad f_\alpha(x) = \frac{x^\alpha - 1}{\alpha(\alpha-1)}, \qquad "
            r"D_f^{\Gamma_L}(P\|Q) = \sup_{\phi\in\Gamma_L} E_P[\phi] - E_Q[f^*(\phi)]"
        ),
        question=(
            "Does the KL run finish, or does a red banner say it diverged (and when)? Does the α = 2 run "
            "get there, and how far into the tails do its particles reach by T = 500?"
        ),
        runs=(
            LessonRun("Run with KL", "fig4-heavy-tails", 0, speed=10),
            LessonRun("Run with α = 2", "fig4-heavy-tails", 1, speed=10),
        ),
    ),
    Lesson(
        id="scarce-data",
        title="Learning from 200 samples (M ≫ N)",
        text=(
            "With as many particles as target samples (M = N), a flow that runs long enough can end with "
            "each particle sitting on a target sample: it memorizes the data. With many more particles "
            "than samples (M ≫ N, §4 strategy 2) they cannot all sit on the 200 points and keep filling "
            "the shape between them (the paper's Fig. 6 used M = 5000, N = 200; here a 2-D Swiss roll)."
        ),
        equation=r"\hat Q^N = \frac1N\sum_{j=1}^{N}\delta_{X^{(j)}}, \qquad M \gg N = 200",
        question=(
            "Zoom into the roll at the end: with M = N, do the particles pile onto the grey target points? "
            "With M = 2000, do they fill the roll between them? Compare the two divergence estimates."
        ),
        runs=(
            LessonRun(
                "Run with M = N = 200",
                "fig6-swiss-roll",
                changes={"dim": 2, "M": 200, "steps": 1000, "solver": "euler"},
                speed=10,
            ),
            LessonRun(
                "Run with M = 2000, N = 200",
                "fig6-swiss-roll",
                changes={"dim": 2, "M": 2000, "steps": 1000, "solver": "euler"},
                speed=10,
            ),
        ),
    ),
    Lesson(
        id="generated",
        title="Generated particles",
        text=(
            "The fields −∇φ_n are networks defined on the whole space, so once they are learned from the "
            "M training particles they can move any new point (§4 strategy 1, Fig. 5c). Here 600 fresh "
            "samples of the source (green diamonds) ride along: they are moved by the same fields but "
            "never trained on. For data augmentation, the paper stops when the divergence estimate is "
            "small enough, D ≤ ε (8.1); the second button runs with that rule."
        ),
        equation=(
            r"\tilde Y_{n+1} = \tilde Y_n - \Delta t\,\nabla\phi_n^{L,*}(\tilde Y_n), \quad "
            r"\phi_n \text{ trained on } (Y_n, X) \text{ only}; \qquad \text{stop once } "
            r"D_f^{\Gamma_L}(P_n\|Q) \le \epsilon"
        ),
        question=(
            "In the W₂ figure, do the generated particles get as close to the target as the trained ones? "
            "Which reaches the smaller W₂, and why might the trained particles be closer? With the stop "
            "rule, at which t does the run stop?"
        ),
        runs=(
            LessonRun("Run with 600 generated particles", "fig2-3-mixture", 0, generated=600),
            LessonRun(
                "…and stop at D ≤ 0.01",
                "fig2-3-mixture",
                0,
                changes={"stop_divergence": 0.01},
                generated=600,
            ),
        ),
    ),
    Lesson(
        id="spectral",
        title="How conservative is spectral normalization",
        text=(
            "Spectral normalization keeps φ L-Lipschitz by making each of the D layers L^{1/D}-Lipschitz: "
            "a product bound, so the network's functions are a subset of all L-Lipschitz functions, and "
            "its estimate of the divergence is a lower bound. The divergence lab computes the exact "
            "D_f^{Γ_L} over all L-Lipschitz φ for small samples and puts the network's estimate beside it."
        ),
        equation=(
            r"W^l \leftarrow L^{1/D}\,\frac{W^l}{\|W^l\|_2} \;\Rightarrow\; \mathrm{Lip}(\phi) \le "
            r"\prod_{l=1}^{D} \|W^l\|_2 = L, \qquad \hat D_{\text{network}} \le D_f^{\Gamma_L}"
        ),
        question=(
            "Press Compute in the lab: at which L is the network's estimate furthest below the exact "
            "value, and does the gap grow or shrink as L grows?"
        ),
        page=DIVERGENCE_LAB,
    ),
    Lesson(
        id="rivals",
        title="MMD vs Sinkhorn vs GPA",
        text=(
            "Three ways to move particles toward a target, stepped with the same Δt from the same "
            "particles. The MMD gradient flow (Arbel et al. 2019) follows the witness function of a "
            "kernel k; with a Gaussian kernel of width σ its pull fades like exp(−r²/2σ²) with the "
            "distance r, so a far target exerts no force and the particles only push one another apart. "
            "The Sinkhorn-divergence flow (Feydy et al. 2019) moves each particle toward where an "
            "entropic transport plan sends it. GPA moves along −∇φ of an L-Lipschitz φ: its speed is at "
            "most L, and its pull does not fade with distance."
        ),
        equation=(
            r"v_{\text{MMD}} = -\nabla_x\Big(\tfrac1M\sum_j k(x, Y^j) - \tfrac1N\sum_n k(x, X^n)\Big),"
            r"\quad v_{S_\varepsilon} = T_{Q}(x) - T_{P}(x), \quad v_{\text{GPA}} = -\nabla\phi^{L,*}(x),"
            r"\ |v_{\text{GPA}}| \le L"
        ),
        question=(
            "In the W₂ figure, which flows reach the far target and which one stalls? Why is the kinetic "
            "energy of MMD with σ = 0.5 tiny from the start? On the four wells, which flows fill all four, "
            "and does GPA at L = ∞ settle?"
        ),
        comparisons=(
            ("Compare on a far target", "rivals-far-target"),
            ("Compare on the four wells", "rivals-four-wells"),
        ),
    ),
)


def get_lesson(lesson_id: str) -> Lesson:
    for lesson in LESSONS:
        if lesson.id == lesson_id:
            return lesson
    raise KeyError(f"no lesson {lesson_id!r}; known: {', '.join(x.id for x in LESSONS)}")


def compare_request(preset_id: str) -> dict[str, str]:
    """What the compare page reads from ``st.session_state[COMPARE_REQUEST]``: load the preset (a
    comparison of :func:`gpa_core.studies.compare.compare_presets`) and start it."""
    return {"preset": preset_id}


def run_settings(run: LessonRun) -> dict[str, Any]:
    """The playground's settings for a lesson's run: the preset's member with the run's changes."""
    state = playground_state.state_from_preset(get_preset(run.preset), run.member)
    state.update(run.changes)
    playground_state.config_from_state(state)  # a lesson with a bad change fails here (and in tests)
    return state


def playground_request(run: LessonRun, *, play: bool = True) -> dict[str, str]:
    """What the playground reads from ``st.session_state["playground_request"]`` (and from the URL):
    the run's settings as link parameters, its generated points, its speed, and ``play``."""
    query = playground_state.to_query(run_settings(run))
    query["generated"] = str(int(run.generated))
    query["speed"] = str(run.speed)
    if play:
        query["play"] = "1"
    return query
