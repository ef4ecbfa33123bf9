"""Particle-flow playground: watch the GPA flow (Algorithm 3.1) move particles towards a target live.

Thin by design: widgets → settings (``ui/playground_state.py``) → FlowConfig + data → the session's Runner
(``gpa_core/engine/runner.py``); a fragment polls the runner's snapshot and draws figures from
``gpa_core/plots/flow.py``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from gpa_core.config import FIELDS, ConfigError, FlowConfig
from gpa_core.data.datasets import DatasetError, get_dataset
from gpa_core.data.points import DataFileError, PointTable, check_precision, check_source
from gpa_core.data.presets import PresetError, list_presets
from gpa_core.engine.runner import Runner
from gpa_core.engine.snapshot import HISTORY_FIELDS
from gpa_core.ot import wasserstein2
from gpa_core.plots import flow as plots
from gpa_core.plots import readout
from ui import playground_state
from ui.session import REFRESH_SECONDS, inside_the_app, sample_points, session_runners
from ui.uploads import UPLOADER_LIMIT_MB, npy_bytes, read_upload

P = "pg:"  # widget-key prefix: keeps this page's keys apart from other pages'
SETTINGS = "pg.settings"
REQUEST = "playground_request"  # query parameters handed over by another page
VERSION = "pg.sv"  # settings version, mirrored in the URL as ?sv= (see _guard)
SPEEDS: tuple[Any, ...] = (1, 2, 5, 10, 20, 50, "max")
#: The opening pace: 5 steps per 0.2 s frame, so the default 500-step run lasts about 20 s (at "max"
#: the compiled path finishes it in about 2 s, too fast to follow).
DEFAULT_SPEED = 5
#: A request's (or link's) keys besides the settings: the number of generated particles, the speed
#: and (requests only) whether to start playing at once: what a lesson's button sets.
GENERATED_PARAM, SPEED_PARAM, PLAY_PARAM = "generated", "speed", "play"
MAX_GENERATED = 20_000
GENERATED_SEED_OFFSET = 2  # generated points: the source dataset drawn with data seed + 2 (fresh points)
W2_POINTS = 400  # the generated points' W₂ to the target is measured on at most this many of each
F_LABELS = {"kl": "KL", "alpha": "α-divergence", "reverse_kl": "reverse KL", "js": "Jensen–Shannon"}
SIDE_LABELS = {"src": "Source P (the particles start here)", "tgt": "Target Q (samples to reach)"}


# ---------------------------------------------------------------------------------------------------
# Settings in session state
# ---------------------------------------------------------------------------------------------------


def _init_settings() -> None:
    """First run of the session: defaults (Fig. 2–3, L = 1), then the link's query parameters.
    Another page may hand over a run ("Open in the playground") in ``playground_request``."""
    request = st.session_state.pop(REQUEST, None)
    if SETTINGS in st.session_state and request is None:
        return
    base = playground_state.default_state()
    query = request if request is not None else st.query_params.to_dict()
    settings, warnings = playground_state.from_query(query, base) if query else (base, [])
    st.session_state[SETTINGS] = settings
    _bump_version()
    st.session_state["pg.link_warnings"] = warnings
    st.session_state.pop("pg.preset", None)
    _apply_extras(query or {}, warnings, autoplay=request is not None)
    if request is not None:
        st.session_state["pg.reset_on_apply"] = True
        for side in ("src", "tgt"):
            st.session_state.pop(f"{P}{side}_upload", None)
    _write_widgets(settings)


def _apply_extras(query: dict[str, Any], warnings: list[str], *, autoplay: bool) -> None:
    """The number of generated particles and the speed from a request or a link; a request's
    ``play`` starts the run once it is built (a lesson's button)."""
    if GENERATED_PARAM in query:
        try:
            g = int(query[GENERATED_PARAM])
            if not 0 <= g <= MAX_GENERATED:
                raise ValueError(f"must be from 0 to {MAX_GENERATED:,}")
            _keep("G", g)
        except (TypeError, ValueError) as exc:
            warnings.append(f"Ignored the link's {GENERATED_PARAM}={str(query[GENERATED_PARAM])[:40]}: {exc}")
    elif autoplay:
        _keep("G", 0)
    if SPEED_PARAM in query:
        text = str(query[SPEED_PARAM])
        speed = next((v for v in SPEEDS if str(v) == text), None)
        if speed is None:
            warnings.append(
                f"Ignored the link's {SPEED_PARAM}={text[:40]}: one of {', '.join(map(str, SPEEDS))}"
            )
        else:
            _keep("speed", speed)
    if autoplay and str(query.get(PLAY_PARAM, "")).lower() in ("1", "true"):
        st.session_state["pg.autoplay"] = True


def _keep(name: str, value: Any) -> None:
    """A page-level widget's value (not a run setting) that survives visits to other pages."""
    st.session_state[P + name] = value
    st.session_state[f"pg.keep.{name}"] = value


def _restore_kept(name: str, default: Any) -> None:
    if P + name not in st.session_state:
        st.session_state[P + name] = st.session_state.get(f"pg.keep.{name}", default)


def _remember(name: str) -> None:
    st.session_state[f"pg.keep.{name}"] = st.session_state[P + name]


def _write_widgets(settings: dict[str, Any]) -> None:
    for key, value in settings.items():
        st.session_state[P + key] = value


def _restore_widgets() -> None:
    """Widgets not drawn in a run lose their state (e.g. after visiting another page): refill them."""
    for key, value in st.session_state[SETTINGS].items():
        if P + key not in st.session_state:
            st.session_state[P + key] = value


def _apply_preset(preset_id: str, member: int) -> None:
    preset = next(p for p in list_presets() if p.id == preset_id)
    settings = playground_state.state_from_preset(preset, member)
    st.session_state[SETTINGS] = settings
    _bump_version()
    _write_widgets(settings)
    for side in ("src", "tgt"):
        st.session_state.pop(f"{P}{side}_upload", None)
    st.session_state["pg.preset"] = (preset.id, member)
    st.session_state["pg.reset_on_apply"] = True


def _on_dataset_change(side: str) -> None:
    """A dataset that cannot live in the current dimension moves it to its default one."""
    name = st.session_state[P + side]
    if name == playground_state.UPLOAD:
        return
    ds = get_dataset(name)
    dim = st.session_state.get(P + "dim", 2)
    if ds.dims is not None and dim not in ds.dims:
        st.session_state[P + "dim"] = ds.default_dim
        st.session_state[SETTINGS]["dim"] = ds.default_dim


def _bump_version() -> None:
    """The server changed the settings itself (a preset, a link, another page's request)."""
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1


def _browser_caught_up() -> bool:
    """Whether the request came from a page that already shows the latest settings: the settings
    version travels in the URL, which the browser updates after the widgets above it."""
    return st.query_params.get("sv") == str(st.session_state.get(VERSION, 0))


def _guard(name: str) -> None:
    """on_change of every settings widget. A change sent by a browser that had not yet drawn the
    latest settings (a slow page clicked right after a preset) would silently undo them: keep ours."""
    key, settings = P + name, st.session_state[SETTINGS]
    if name in settings and not _browser_caught_up():
        st.session_state[key] = settings[name]
        return
    settings[name] = st.session_state[key]
    if name in ("src", "tgt"):
        _on_dataset_change(name)


def _w(name: str) -> dict[str, Any]:
    """Keyword arguments for a settings widget: its key and the guard."""
    return {"key": P + name, "on_change": _guard, "args": (name,)}


def _choices(name: str) -> tuple[Any, ...]:
    """A choice field's values, from its Literal type (FlowConfig's field metadata)."""
    return FIELDS[name].choices


# ---------------------------------------------------------------------------------------------------
# Sidebar widgets
# ---------------------------------------------------------------------------------------------------


def _preset_buttons() -> None:
    try:
        presets = list_presets()
    except PresetError as exc:
        st.error(f"The presets could not be read: {exc}")
        return
    with st.expander("Reproduce the paper", expanded=True):
        for preset in presets:
            for k, label in enumerate(preset.labels):
                text = f"{preset.paper.split(' (')[0]} · {preset.title.split(':')[0]}"
                if len(preset.members) > 1:
                    text += f" · {label}"
                st.button(
                    text,
                    key=f"{P}preset:{preset.id}:{k}",
                    on_click=_apply_preset,
                    args=(preset.id, k),
                    help=preset.title,
                    width="stretch",
                )


def _param_widget(side: str, name: str, spec: Any) -> None:
    w = _w(f"{side}.{name}.{spec.name}")
    key = w["key"]
    st.session_state.setdefault(key, spec.default)
    label = spec.name
    if spec.kind == "choice":
        st.selectbox(label, spec.choices, help=spec.help, **w)
    elif spec.kind == "int":
        st.number_input(
            label,
            **w,
            step=1,
            min_value=int(spec.low) if spec.low is not None else None,
            max_value=int(spec.high) if spec.high is not None else None,
            help=spec.help,
        )
    elif spec.kind == "float":
        if isinstance(st.session_state[key], int):
            st.session_state[key] = float(st.session_state[key])
        st.number_input(label, step=0.1, format="%g", help=spec.help, **w)


@dataclass
class _Side:
    """One side's data as the widgets describe it: uploaded points, or a dataset still to sample."""

    side: str
    slot: Any  # where this side's error goes (right under its widgets)
    points: np.ndarray | None = None
    label: str = ""  # how messages name the data
    key: tuple | None = None
    dataset: str | None = None
    values: dict[str, Any] | None = None
    n: int = 0
    seed: int = 0

    def sample(self, dim: int, uploaded: bool = False) -> None:
        """Sample a dataset side in dimension ``dim`` (errors go to the side's slot); ``uploaded``: the
        other side's upload set ``dim``, which the message then says."""
        if self.dataset is None or self.values is None:
            return
        try:
            self.points = sample_points(self.dataset, json.dumps(self.values), self.n, self.seed, dim)
            self.key = (self.dataset, json.dumps(self.values, sort_keys=True), self.n, self.seed, dim)
        except (DatasetError, DataFileError) as exc:
            why = (
                f" The upload has {dim} dimension(s), so this side needs them too: choose a dataset "
                "that has them, or upload this side as well."
            )
            self.slot.error(f"{exc}{why if uploaded else ''}")

    def check_precision(self, dtype: str) -> None:
        """Drop points a run in ``dtype`` cannot hold (values beyond float32's range), saying why."""
        if self.points is None:
            return
        try:
            check_precision(self.points, dtype, self.label)
        except DataFileError as exc:
            self.slot.error(str(exc))
            self.points = None


def _show_upload(slot: Any, filename: str, table: PointTable) -> None:
    """Under the upload: what was read, then the reader's notes (info as captions, warnings as such)."""
    points = table.points
    with slot.container():
        st.caption(f"{filename}: {len(points):,} points in {points.shape[1]} dimension(s)")
        for note in table.notes:
            (st.warning if note.level == "warning" else st.caption)(note.text)


def _data_side(side: str) -> _Side:
    """Widgets for one side. An upload is read here; a dataset is sampled later, once the dimension
    is known (an upload on either side sets it). Errors show right under the side's widgets."""
    st.markdown(f"**{SIDE_LABELS[side]}**")
    options = (*playground_state.UI_DATASETS, playground_state.UPLOAD)
    st.selectbox(
        "dataset",
        options,
        format_func=lambda n: (
            "Upload points or an image…" if n == playground_state.UPLOAD else get_dataset(n).label
        ),
        **_w(side),
        label_visibility="collapsed",
    )
    name = st.session_state[P + side]
    n = int(st.session_state[P + ("M" if side == "src" else "N")])
    seed = int(st.session_state[P + "data_seed"]) + (0 if side == "src" else 1)
    if name == playground_state.UPLOAD:
        upload = st.file_uploader(
            "CSV/TSV/TXT/NPY/NPZ table (one point per row) or an image (dark pixels → points)",
            type=None,  # every file reaches the reader, which names what it cannot use
            key=f"{P}{side}_upload",
            max_upload_size=UPLOADER_LIMIT_MB,
        )
        slot = st.empty()
        if upload is None:
            slot.info("Upload a file to use it; the current run continues meanwhile.")
            return _Side(side, slot)
        label = f"'{upload.name}'"
        try:
            table = read_upload(upload.getvalue(), upload.name, n, seed)
            if side == "src":  # particles that all start at one point move as one
                check_source(table.points, label)
        except (DataFileError, ValueError) as exc:
            slot.error(str(exc))
            return _Side(side, slot)
        _show_upload(slot, upload.name, table)
        key = ("upload", upload.file_id, upload.name, n, seed)
        return _Side(side, slot, points=table.points, label=label, key=key)
    ds = get_dataset(name)
    for spec in ds.params:
        if spec.kind != "str":
            _param_widget(side, name, spec)
    slot = st.empty()
    params = playground_state.dataset_params(st.session_state[SETTINGS] | _widget_values(), side)
    try:
        values = ds.validate_params(params)
    except DatasetError as exc:
        slot.error(str(exc))
        return _Side(side, slot)
    label = f"The {'source' if side == 'src' else 'target'} ({ds.label})"
    return _Side(side, slot, dataset=name, values=values, n=n, seed=seed, label=label)


def _data() -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, tuple]:
    """Both sides' points (None where unusable), the generated points (None: none) and a key that
    changes when any of them do."""
    _sizes()
    src, tgt = _data_side("src"), _data_side("tgt")
    uploaded = [s.points.shape[1] for s in (src, tgt) if s.points is not None]
    dim = uploaded[0] if uploaded else int(st.session_state[P + "dim"])
    if uploaded and dim != st.session_state[P + "dim"]:
        st.caption(f"The upload sets the dimension: d = {dim}.")
    src.sample(dim, uploaded=bool(uploaded))
    tgt.sample(dim, uploaded=bool(uploaded))
    dtype = st.session_state.get(P + "dtype", "float32")
    src.check_precision(dtype)
    tgt.check_precision(dtype)
    gen, gen_key = _generated(src, dim)
    if src.points is not None and tgt.points is not None and src.points.shape[1] != tgt.points.shape[1]:
        tgt.slot.error(
            f"The source has {src.points.shape[1]} dimension(s) and the target {tgt.points.shape[1]}: "
            "they must match."
        )
        return None, None, None, (src.key, tgt.key, gen_key)
    return src.points, tgt.points, gen, (src.key, tgt.key, gen_key)


def _generated(src: _Side, dim: int) -> tuple[np.ndarray | None, tuple | None]:
    """The generated particles (paper §4): G fresh samples of the source distribution, moved by the
    run's learned fields but never trained on. Changing G restarts the run."""
    _restore_kept("G", 0)
    st.number_input(
        "generated particles G (0 = off)",
        min_value=0,
        max_value=MAX_GENERATED,
        step=100,
        key=P + "G",
        on_change=_remember,
        args=("G",),
        help="Fresh samples from the source P, pushed through the fields learned by the M training "
        "particles without being trained on (paper §4, strategy 1); drawn green, with their W₂ to the "
        "target over time. A change restarts the run.",
    )
    g = int(st.session_state[P + "G"])
    if g == 0 or src.points is None:
        return None, None
    if src.dataset is None or src.values is None:
        st.caption("Generated particles need a dataset as the source (an upload has no fresh samples).")
        return None, None
    seed = src.seed + GENERATED_SEED_OFFSET
    values = json.dumps(src.values)
    try:
        points = sample_points(src.dataset, values, g, seed, dim)
    except (DatasetError, DataFileError) as exc:
        st.caption(f"No generated particles: {exc}")
        return None, None
    return points, (src.dataset, json.dumps(src.values, sort_keys=True), g, seed, dim)


def _widget_values() -> dict[str, Any]:
    return {k[len(P) :]: v for k, v in st.session_state.items() if isinstance(k, str) and k.startswith(P)}


def _sizes() -> None:
    c1, c2 = st.columns(2)
    c1.number_input("M particles", min_value=1, max_value=playground_state.MAX_POINTS, step=50, **_w("M"))
    c2.number_input("N targets", min_value=1, max_value=playground_state.MAX_POINTS, step=50, **_w("N"))
    c3, c4 = st.columns(2)
    c3.number_input("dimension d", min_value=1, max_value=playground_state.MAX_UI_DIM, step=1, **_w("dim"))
    c4.number_input("data seed", min_value=0, max_value=2**31 - 2, step=1, **_w("data_seed"))


def _config_widgets() -> None:
    st.selectbox("f-divergence f", _choices("f"), **_w("f"), format_func=F_LABELS.get)
    f = st.session_state[P + "f"]
    c1, c2 = st.columns(2)
    c1.number_input("α", min_value=1.01, max_value=1000.0, step=0.5, **_w("alpha"), disabled=f != "alpha")
    c2.selectbox(
        "KL form",
        _choices("kl_form"),
        **_w("kl_form"),
        format_func={"lt": "Legendre (ν trained)", "dv": "Donsker–Varadhan"}.get,
        disabled=f != "kl",
    )
    st.select_slider(
        "Lipschitz constant L",
        options=playground_state.choices_with(playground_state.L_CHOICES, st.session_state[P + "L"]),
        **_w("L"),
        format_func=lambda v: "∞ (none)" if math.isinf(v) else f"{v:g}",
        help="Particles move at most L·Δt per step (the CFL bound of §6); ∞ removes the bound.",
    )
    c1, c2 = st.columns(2)
    c1.number_input("time step Δt", min_value=1e-4, max_value=100.0, step=0.05, format="%g", **_w("dt"))
    c2.number_input("steps (T = steps·Δt)", min_value=1, max_value=1_000_000, step=100, **_w("steps"))
    c1, c2 = st.columns(2)
    c1.number_input("m_max (φ updates/step)", min_value=1, max_value=100, step=1, **_w("inner_steps"))
    c2.select_slider(
        "learning rate",
        options=playground_state.choices_with(playground_state.LR_CHOICES, st.session_state[P + "lr"]),
        **_w("lr"),
        format_func=lambda v: f"{v:g}",
    )
    st.text_input("hidden widths", **_w("hidden"), help="Layer widths of φ, e.g. 32, 32, 32")
    c1, c2 = st.columns(2)
    acts = _choices("activation")
    c1.selectbox("activation", acts, **_w("activation"))
    c2.selectbox("last hidden activation", (playground_state.SAME, *acts), **_w("last_activation"))
    c1, c2 = st.columns(2)
    c1.selectbox("Lipschitz mode", _choices("lipschitz"), **_w("lipschitz"))
    c2.selectbox("solver", _choices("solver"), **_w("solver"), format_func=str.capitalize)
    st.number_input("network seed", min_value=0, max_value=2**31 - 1, step=1, **_w("seed"))
    if isinstance(st.session_state[P + "stop_divergence"], int):
        st.session_state[P + "stop_divergence"] = float(st.session_state[P + "stop_divergence"])
    st.number_input(
        "stop when D ≤ ε (0 = off)",
        min_value=0.0,
        max_value=1e6,
        step=1e-3,
        format="%g",
        **_w("stop_divergence"),
        help="The augmentation rule of §4 and (8.1): the run stops at the first step whose divergence "
        "estimate D is at most ε, and keeps the particles that estimate was computed at (the paper's "
        "Fig. 6 used D ≤ 1.07e-4). Live: a new ε lets a stopped run go on.",
    )
    with st.expander("More numerics"):
        st.checkbox("log-sum-exp in the DV form", **_w("logsumexp"))
        st.number_input(
            "gradient-penalty weight", min_value=1e-6, max_value=1e6, format="%g", **_w("penalty_weight")
        )
        st.selectbox("initialization", _choices("init"), **_w("init"))
        st.selectbox("Adam state across steps", _choices("optimizer_state"), **_w("optimizer_state"))
        st.selectbox("device", _choices("device"), **_w("device"))
        st.selectbox("precision", _choices("dtype"), **_w("dtype"))


def _view_widgets() -> dict[str, Any]:
    with st.expander("View"):
        view = {
            "phi": st.checkbox("φ heat map", value=True, key=P + "view_phi"),
            "arrows": st.checkbox("−∇φ arrows", value=True, key=P + "view_arrows"),
            "trails": st.checkbox("trails", value=True, key=P + "view_trails"),
            "images": st.checkbox("show 64-d points as 8×8 images", value=True, key=P + "view_images"),
        }
    return view


# ---------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------


def _connect(
    src: np.ndarray | None,
    tgt: np.ndarray | None,
    data_key: tuple | None,
    cfg: FlowConfig | None,
    gen: np.ndarray | None = None,
) -> Runner | None:
    """Create, re-seed or reconfigure the session's runner; errors leave the current run as it is."""
    slots = session_runners()
    runner = slots.get("playground")
    usable = src is not None and tgt is not None and cfg is not None
    reset = st.session_state.pop("pg.reset_on_apply", False)
    if not usable:
        return runner
    try:
        if runner is None:
            runner = Runner(src, tgt, cfg, generated=gen, distance=_w2)
            slots.put("playground", runner)
        elif st.session_state.get("pg.data_key") != data_key:
            runner.replace_data(src, tgt, cfg, generated=gen)
        elif cfg != runner.configs[0]:
            if reset:
                runner.replace_data(src, tgt, cfg, generated=gen)
            else:
                runner.update(cfg)
        elif reset:
            runner.reset()
        st.session_state["pg.data_key"] = data_key
    except (ConfigError, DatasetError, ValueError) as exc:
        st.sidebar.error(f"Not applied: {exc}")
    except (RuntimeError, MemoryError) as exc:  # e.g. out of memory while building the flow
        st.sidebar.error(f"Could not build this run ({type(exc).__name__}: {exc}); try fewer points.")
    st.session_state["pg.runner"] = runner  # a handle for tests; the session's slot owns the runner
    return runner


def _w2(points: np.ndarray, target: np.ndarray) -> float:
    """W₂ on fixed random subsets of at most W2_POINTS points (so values along a run compare)."""
    return wasserstein2(points, target, max_points=W2_POINTS, seed=0)


def _play(runner: Runner) -> None:
    runner.play()


def _pause(runner: Runner) -> None:
    runner.pause()
    runner.wait_idle(timeout=5.0)  # show where it stopped, not a chunk that was still running


def _step(runner: Runner) -> None:
    version = runner.snapshot().version
    runner.step_once(1)
    runner.wait_for(version, timeout=10.0)


def _reset(runner: Runner) -> None:
    runner.reset()


def _status_line(snap: Any) -> str:
    state = {"ready": "ready", "playing": "playing", "paused": "paused", "finished": "finished"}.get(
        snap.state, snap.state
    )
    t = float(snap.t[0])
    return (
        f"**step n = {snap.n}** · t = {t:.4g} of T = {snap.configs[0].horizon:g} · {state} · "
        f"{snap.steps_per_second:.1f} steps/s · {snap.device} · {snap.engine} path"
    )


def _stability(snap: Any) -> None:
    ro = readout.stability_readout(snap)
    cells = [(c.replace("|", "\\|") for c in row) for row in ro.rows()]
    rows = "\n".join("| {} | {} | {} |".format(*row) for row in cells)
    st.markdown("**Stability (CFL, §6)**\n\n| quantity | value | meaning |\n|---|---|---|\n" + rows)
    for level, note in ro.notes:
        {"ok": st.caption, "warn": st.warning, "bad": st.error}[level](note)


def _live(runner: Runner, view: dict[str, Any], image_shape: tuple[int, int] | None) -> None:
    """Controls, then the live views in a fragment that polls the runner every REFRESH_SECONDS while
    it plays. The buttons stay outside the fragment: a click then asks for a whole-page run, which
    Streamlit never merges away into one of the fragment's timed reruns."""
    playing = runner.playing
    c1, c2, c3, _ = st.columns([1, 1, 1, 6], vertical_alignment="center")
    # two buttons, one shown at a time, each doing one thing: a repeated or late click event can
    # never turn into its opposite
    if playing:
        c1.button("Pause", key=P + "pause", on_click=_pause, args=(runner,), type="primary", width="stretch")
    else:
        c1.button("Play", key=P + "play", on_click=_play, args=(runner,), type="primary", width="stretch")
    c2.button("Step", key=P + "step", on_click=_step, args=(runner,), width="stretch")
    c3.button("Reset", key=P + "reset", on_click=_reset, args=(runner,), width="stretch")

    @st.fragment(run_every=REFRESH_SECONDS if playing else None)
    def live_view() -> None:
        if runner.playing != playing:
            st.rerun()  # the run stopped or started by itself: relabel Play/Pause, switch the timer
        snap = runner.snapshot()
        st.markdown(_status_line(snap))
        verdict = readout.banner(snap)
        if verdict is not None:
            kind, text = verdict
            {"error": st.error, "warning": st.warning, "success": st.success, "info": st.info}[kind](text)
        if snap.message and snap.state != "error":
            st.caption(snap.message)
        left, right = st.columns([3, 2])
        with left:
            if image_shape is not None and view["images"]:
                fig = plots.digits_figure(snap, image_shape=image_shape, validate=False)
            else:
                fig = plots.particles_figure(
                    snap,
                    show_phi=view["phi"],
                    show_arrows=view["arrows"],
                    show_trails=view["trails"],
                    validate=False,
                )
            st.plotly_chart(fig, key=P + "particles", config={"displaylogo": False})
            if snap.d == 2:
                st.caption(
                    "Red dots: particles · grey dots: target samples · background: φ (red high, blue low) · "
                    "arrows: −∇φ, the velocity a particle would have there."
                    + (
                        " · green diamonds: generated particles (moved by the same fields, never trained on)."
                        if snap.generated is not None
                        else ""
                    )
                )
        with right:
            _stability(snap)
        if snap.distances is None:
            st.plotly_chart(
                plots.history_figure(snap, validate=False), key=P + "history", config={"displaylogo": False}
            )
        else:
            h_col, w_col = st.columns([3, 2])
            h_col.plotly_chart(
                plots.history_figure(snap, validate=False), key=P + "history", config={"displaylogo": False}
            )
            w_col.plotly_chart(
                plots.distances_figure(snap, validate=False),
                key=P + "distances",
                config={"displaylogo": False},
            )

    live_view()


_MIME = {  # by file extension
    "csv": "text/csv",
    "npy": "application/octet-stream",
    "json": "application/json",
    "html": "text/html",
}


def _download(column: Any, label: str, data: Any, file_name: str, tip: str | None = None) -> None:
    """One download button; ``data`` (a callable) makes the file only when the button is clicked."""
    mime = _MIME[file_name.rsplit(".", 1)[-1]]
    column.download_button(label, data=data, file_name=file_name, mime=mime, help=tip)


def _exports(runner: Runner, settings: dict[str, Any]) -> None:
    snap = runner.snapshot
    with st.expander("Export"):
        c1, c2, c3 = st.columns(3)
        _download(c1, "Particles (CSV)", lambda: snap().particles_csv(), "gpa_particles.csv")
        _download(c1, "Particles (NPY)", lambda: npy_bytes(snap().particles[0]), "gpa_particles.npy")
        _download(c2, "History (CSV)", lambda: snap().history_csv(), "gpa_history.csv")
        columns = "Columns: step, " + ", ".join(HISTORY_FIELDS) + " (member 0)"
        _download(c2, "History (NPY)", lambda: npy_bytes(_history_matrix(runner)), "gpa_history.npy", columns)
        _download(c3, "Configuration (JSON)", lambda: _config_json(runner, settings), "gpa_run.json")
        offline = "A self-contained animation of the recorded frames (opens offline)"
        _download(c3, "Animation (HTML)", lambda: _animation(runner), "gpa_flow.html", offline)
        if runner.snapshot().generated is not None:
            c1, c2, _ = st.columns(3)
            _download(c1, "Generated particles (CSV)", lambda: snap().generated_csv(), "gpa_generated.csv")
            _download(
                c1,
                "Generated particles (NPY)",
                lambda: npy_bytes(_generated_now(runner)),
                "gpa_generated.npy",
            )
            w2 = "Columns: step, time, w2_generated, w2_particles (member 0)"
            _download(c2, "W₂ over time (CSV)", lambda: snap().distances_csv(), "gpa_w2.csv", w2)


def _generated_now(runner: Runner) -> np.ndarray:
    gen = runner.snapshot().generated
    return np.zeros((0, runner.snapshot().d)) if gen is None else gen[0]


def _history_matrix(runner: Runner) -> np.ndarray:
    h = runner.snapshot().history
    return np.column_stack([h.step.astype(np.float64)] + [getattr(h, f)[:, 0] for f in HISTORY_FIELDS])


def _config_json(runner: Runner, settings: dict[str, Any]) -> str:
    snap = runner.snapshot()
    link = playground_state.to_query(settings)
    return json.dumps(
        {
            "source": link["source"],
            "target": link["target"],
            "M": snap.M,
            "N": snap.N,
            "dim": snap.d,
            "data_seed": settings.get("data_seed", 0),
            "config": snap.configs[0].to_dict(),
            # the path this run took (set config.engine to it to repeat the run digit for digit)
            "engine_used": snap.engine,
            "query": link,
        },
        indent=2,
        ensure_ascii=False,
    )


def _animation(runner: Runner) -> str:
    snap = runner.snapshot()
    fig = plots.animation_figure(runner.frames(), snap.target[0], extent=snap.extent)
    return plots.animation_html(fig)


# ---------------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------------


def main() -> None:
    _init_settings()
    _restore_widgets()
    st.title("Particle flow")
    st.caption(
        "Lipschitz-regularized gradient flow (Algorithm 3.1): particles from P follow −∇φ, where φ is an "
        "L-Lipschitz network trained to tell them from the target samples Q."
    )
    for warning in st.session_state.pop("pg.link_warnings", []):
        st.warning(warning)

    with st.sidebar:
        _preset_buttons()
        with st.expander("Data", expanded=False):
            src, tgt, gen, data_key = _data()
        with st.expander("Flow", expanded=False):
            _config_widgets()
        view = _view_widgets()
        _restore_kept("speed", DEFAULT_SPEED)
        st.select_slider(
            "speed (steps per frame)",
            options=SPEEDS,
            key=P + "speed",
            on_change=_remember,
            args=("speed",),
            help=f"Steps per frame of {REFRESH_SECONDS:g} s: the default {DEFAULT_SPEED} shows the opening "
            "500-step run in about 20 s; 'max' runs the flow as fast as it goes.",
        )

    settings = {k: st.session_state[P + k] for k in st.session_state[SETTINGS] if P + k in st.session_state}
    for side in ("src", "tgt"):
        name = settings.get(side)
        if name and name != playground_state.UPLOAD:
            for spec in get_dataset(name).params:
                key = f"{side}.{name}.{spec.name}"
                if P + key in st.session_state:
                    settings[key] = st.session_state[P + key]
    st.session_state[SETTINGS] = {**st.session_state[SETTINGS], **settings}

    cfg: FlowConfig | None = None
    try:
        cfg = playground_state.config_from_state(settings)
    except ConfigError as exc:
        st.sidebar.error(f"Flow settings: {exc}")

    runner = _connect(src, tgt, data_key, cfg, gen)
    if runner is None:
        st.error("Fix the settings in the sidebar to start a run.")
        st.stop()

    speed = st.session_state[P + "speed"]
    runner.set_speed(None if speed == "max" else int(speed), frame_interval=REFRESH_SECONDS)
    if st.session_state.pop("pg.autoplay", False):
        runner.play()  # a lesson's button: the run starts as the page opens

    preset = st.session_state.get("pg.preset")
    if preset is not None:
        found = [p for p in list_presets() if p.id == preset[0]]
        if found:
            p = found[0]
            with st.expander(f"Preset: {p.paper} — {p.title} ({p.labels[preset[1]]})"):
                st.write(p.notes)

    snap = runner.snapshot()
    image_shape = (8, 8) if snap.d == 64 else None
    _live(runner, view, image_shape)
    _exports(runner, st.session_state[SETTINGS])

    try:
        query = playground_state.to_query(st.session_state[SETTINGS])
    except (ConfigError, DatasetError):
        query = {}
    if int(st.session_state.get(P + "G", 0)):
        query[GENERATED_PARAM] = str(int(st.session_state[P + "G"]))
    query["sv"] = str(st.session_state.get(VERSION, 0))
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


inside_the_app()  # a link opened first still gets the app's navigation
main()
