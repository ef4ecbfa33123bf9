"""Plotly figure builders: pure functions of runner snapshots (no Streamlit, testable without a browser).

* :func:`particles_figure` — particles over the target: 2-D scatter (WebGL) with the φ heat map and
  −∇φ arrows and short trails; 3-D scatter for d = 3; a 2-D PCA projection (fitted on the target)
  for more dimensions.
* :func:`digits_figure` — particles and target as mosaics of small images (8×8 digits).
* :func:`history_figure` — kinetic energy (3.3) and the divergence estimate against physical time,
  log axes, one curve per member.
* :func:`distances_figure` — W₂ to the target over time of the generated points (paper §4: fresh source
  samples moved by the learned fields) beside the trained particles'.
* (the CFL read-out and the one-line verdict of a run are in :mod:`gpa_core.plots.readout`)
* :func:`animation_figure` / :func:`animation_html` — a self-contained animation of recorded frames.

Arrays go into the figures as NumPy float32 so Plotly ≥ 6 sends them base64-packed (small payloads).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from gpa_core.config import FIELDS, PER_MEMBER_FIELDS, FlowConfig, field_label
from gpa_core.engine.snapshot import Frame, Snapshot, nearest_neighbour_spacing, nondegenerate_box
from gpa_core.plots.readout import short

__all__ = [
    "MEMBER_COLORS",
    "SpecFigure",
    "animation_figure",
    "animation_html",
    "axis_ranges",
    "digits_figure",
    "distances_figure",
    "history_figure",
    "member_labels",
    "nearest_neighbour_spacing",
    "particles_figure",
    "projection_basis",
]

MEMBER_COLORS: tuple[str, ...] = (
    "#d62728",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
TARGET_COLOR = "rgba(70, 70, 70, 0.55)"
GENERATED_COLOR = "#2ca02c"  # generated points (§4): their own colour, and diamonds
PHI_COLORSCALE = "RdBu"


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# Labels and ranges
# ---------------------------------------------------------------------------------------------------


def member_labels(configs: Sequence[FlowConfig]) -> list[str]:
    """Short labels naming what differs between members, e.g. ``["f = KL", "f = α, α = 2"]``."""
    configs = list(configs)
    if len(configs) <= 1:
        c = configs[0] if configs else FlowConfig()
        return [_describe(c, ("f", "L"))]
    differing = [
        name
        for name in FIELDS  # in field order
        if name in PER_MEMBER_FIELDS and len({getattr(c, name) for c in configs}) > 1
    ]
    return [_describe(c, differing or ("f", "L")) for c in configs]


def _describe(c: FlowConfig, names: Sequence[str]) -> str:
    parts = []
    for name in names:
        if name == "f":
            parts.append(
                {"kl": "KL", "alpha": f"α = {c.alpha:g}", "reverse_kl": "reverse KL", "js": "JS"}[c.f]
            )
        elif name == "alpha":
            if c.f == "alpha" and "f" not in names:
                parts.append(f"α = {c.alpha:g}")
        elif name == "L":
            parts.append("L = ∞" if math.isinf(c.L) else f"L = {c.L:g}")
        else:
            parts.append(f"{field_label(name)} = {getattr(c, name)}")
    return ", ".join(parts)


def axis_ranges(snap: Snapshot, member: int | None = 0, dims: tuple[int, int] = (0, 1)) -> list[list[float]]:
    """Fixed axis ranges: the data's box at the start of the run (made :func:`nondegenerate_box`), grown
    to hold particles that left it (only finite ones, and never more than 20× the box, so a runaway
    member cannot squash the view)."""
    lo, hi = nondegenerate_box(*snap.extent)
    out = []
    for d in dims:
        a, b = float(lo[d]), float(hi[d])
        span = b - a
        pts = snap.particles[:, :, d] if member is None else snap.particles[member, :, d]
        pts = pts[np.isfinite(pts)]
        if pts.size:
            pmin, pmax = float(pts.min()), float(pts.max())
            pad = 0.05 * span
            if pmin < a:
                a = max(pmin - pad, a - 20 * span)
            if pmax > b:
                b = min(pmax + pad, b + 20 * span)
        out.append([a, b])
    return out


def projection_basis(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), W (d, 2)): the first two principal directions of ``points`` (sign-fixed)."""
    x = np.asarray(points, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    w = vt[:2].T
    if w.shape[1] < 2:
        w = np.column_stack([w, np.zeros(x.shape[1])])
    signs = np.sign(w[np.argmax(np.abs(w), axis=0), range(2)])
    return mean, w * np.where(signs == 0, 1.0, signs)


# ---------------------------------------------------------------------------------------------------
# Fast figures: specs as plain dicts
# ---------------------------------------------------------------------------------------------------


_TYPED = {"float32": "f4", "float64": "f8", "int8": "i1", "int16": "i2", "int32": "i4", "uint8": "u1"}


def _pack(obj: Any) -> Any:
    """A copy of a figure spec with NumPy arrays packed as plotly.js typed arrays (base64), as
    ``go.Figure.to_dict`` does in Plotly ≥ 6, minus its per-array overhead. The spec is not changed."""
    if isinstance(obj, dict):
        return {k: (v if k == "range" else _pack(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_pack(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.size and obj.dtype.kind in "fiu":
        arr = obj
        if arr.dtype.name not in _TYPED:
            arr = arr.astype(np.float64 if arr.dtype.kind == "f" else np.int32)
        arr = np.ascontiguousarray(arr)
        out = {"dtype": _TYPED[arr.dtype.name], "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}
        if arr.ndim > 1:
            out["shape"] = ", ".join(str(n) for n in arr.shape)
        return out
    return obj


class SpecFigure(go.Figure):
    """A prebuilt figure whose dict ``spec`` is handed as is to ``plotly.io.to_json`` and
    ``st.plotly_chart`` (which read ``to_dict()``): no property-by-property validation, so a 2,000-point
    frame costs a few milliseconds instead of tens. Read-only: build a new one to change it;
    :meth:`validated` gives the ordinary (checked) ``go.Figure``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self._spec = spec

    @property
    def spec(self) -> dict[str, Any]:
        return self._spec

    def to_dict(self) -> dict[str, Any]:
        return _pack(self._spec)

    def to_plotly_json(self) -> dict[str, Any]:
        return self.to_dict()

    def validated(self) -> go.Figure:
        return go.Figure(self._spec)


def _finish(spec: dict[str, Any], validate: bool) -> go.Figure:
    return go.Figure(spec) if validate else SpecFigure(spec)


def _layout(height: int, title: str, uirevision: str) -> dict[str, Any]:
    return {
        "height": height,
        "title": {"text": title, "font": {"size": 14}},
        "margin": {"l": 40, "r": 10, "t": 40, "b": 50},
        "uirevision": uirevision,
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.08, "xanchor": "center", "x": 0.5},
        "plot_bgcolor": "white",
    }


def _uirev(snap: Snapshot, kind: str) -> str:
    lo, hi = snap.extent
    box = ",".join(f"{v:.3g}" for v in (*lo[:3], *hi[:3]))
    return f"{kind}:{snap.d}:{box}"


def _markers(kind: str, x, y, color: str, size: float, name: str, z=None, symbol: str = "") -> dict[str, Any]:
    trace = {
        "type": kind,
        "x": _f32(x),
        "y": _f32(y),
        "mode": "markers",
        "marker": {"size": size, "color": color, **({"symbol": symbol} if symbol else {})},
        "name": name,
        "hoverinfo": "skip",
    }
    if z is not None:
        trace["z"] = _f32(z)
    return trace


# ---------------------------------------------------------------------------------------------------
# Particles
# ---------------------------------------------------------------------------------------------------


def particles_figure(
    snap: Snapshot,
    member: int = 0,
    *,
    show_target: bool = True,
    show_trails: bool = True,
    show_phi: bool = True,
    show_arrows: bool = True,
    show_generated: bool = True,
    height: int = 520,
    title: str | None = None,
    validate: bool = True,
) -> go.Figure:
    """Particles of one member over the target. 2-D: scatter (+ φ heat map, −∇φ arrows, trails);
    3-D: a rotatable 3-D scatter; d > 3: the plane of the target's two main principal components.
    Generated points (``snap.generated``, §4), if any, are green diamonds (``show_generated``).
    ``validate=False`` returns a fast :class:`SpecFigure` (for live views)."""
    if not 0 <= member < snap.K:
        raise ValueError(f"member must be in 0..{snap.K - 1}, got {member}")
    color = MEMBER_COLORS[member % len(MEMBER_COLORS)]
    label = member_labels(snap.configs)[member]
    title = title if title is not None else f"n = {snap.n}, t = {short(float(snap.t[member]))} · {label}"
    if snap.d == 3:
        spec = _spec_3d(snap, member, color, show_target, height, title)
    elif snap.d == 2:
        spec = _spec_2d(snap, member, color, show_target, show_trails, show_phi, show_arrows, height, title)
    else:
        spec = _spec_projected(snap, member, color, show_target, height, title)
    if show_generated and snap.generated is not None and snap.generated.shape[1]:
        _add_generated(spec, snap, member)
    return _finish(spec, validate)


def _add_generated(spec: dict[str, Any], snap: Snapshot, member: int) -> None:
    """The generated points as their own trace, drawn just under the trained particles."""
    g = np.asarray(snap.generated[member], dtype=np.float64)
    name = f"generated (G = {g.shape[0]})"
    if snap.d == 3:
        trace = _markers("scatter3d", g[:, 0], g[:, 1], GENERATED_COLOR, 2, name, g[:, 2], symbol="diamond")
    elif snap.d == 2:
        trace = _markers("scattergl", g[:, 0], g[:, 1], GENERATED_COLOR, 5, name, symbol="diamond")
    else:
        if snap.d == 1:
            p = np.column_stack([g[:, 0], np.linspace(-0.5, 0.5, len(g))])
        else:
            mean, w = projection_basis(snap.target[member])
            p = (g - mean) @ w
        trace = _markers("scattergl", p[:, 0], p[:, 1], GENERATED_COLOR, 5, name, symbol="diamond")
    spec["data"].insert(len(spec["data"]) - 1, trace)


def _spec_2d(
    snap: Snapshot,
    member: int,
    color: str,
    show_target: bool,
    show_trails: bool,
    show_phi: bool,
    show_arrows: bool,
    height: int,
    title: str,
) -> dict[str, Any]:
    xr, yr = axis_ranges(snap, member)
    traces: list[dict[str, Any]] = []
    grid = snap.grid if snap.grid is not None and snap.grid.member == member else None
    if show_phi and grid is not None and np.isfinite(grid.phi).any():
        traces.append(
            {
                "type": "heatmap",
                "x": _f32(grid.xs),
                "y": _f32(grid.ys),
                "z": _f32(grid.phi),
                "colorscale": PHI_COLORSCALE,
                "reversescale": True,
                "opacity": 0.45,
                "zsmooth": "best",
                "showscale": False,
                "name": "φ",
                "hovertemplate": "φ = %{z:.3g}<extra></extra>",
            }
        )
    if show_arrows and grid is not None:
        traces.append(_arrows(grid, xr, yr))
    if show_target:
        tgt = snap.target[member]
        traces.append(_markers("scattergl", tgt[:, 0], tgt[:, 1], TARGET_COLOR, 4, f"target (N = {snap.N})"))
    if show_trails and snap.trails is not None and snap.trails.shape[0] > 1 and member == 0:
        tr = snap.trails  # (T, P, d)
        T, P = tr.shape[0], tr.shape[1]
        xs = np.full((P, T + 1), np.nan, dtype=np.float32)
        ys = np.full((P, T + 1), np.nan, dtype=np.float32)
        xs[:, :T] = tr[:, :, 0].T
        ys[:, :T] = tr[:, :, 1].T
        # one polyline per particle, separated by NaN gaps. SVG, not WebGL: regl-line2d (scattergl)
        # ignores a gap next to a flat segment, so a particle that has stopped joined its trail to the
        # next particle's across the plot (plotly.js #3551); a few hundred points draw fast in SVG
        traces.append(
            {
                "type": "scatter",
                "x": xs.ravel(),
                "y": ys.ravel(),
                "mode": "lines",
                "line": {"width": 1, "color": "rgba(214, 39, 40, 0.45)"},
                "name": "trails",
                "hoverinfo": "skip",
                "connectgaps": False,
            }
        )
    p = snap.particles[member]
    traces.append(_markers("scattergl", p[:, 0], p[:, 1], color, 5, f"particles (M = {snap.M})"))
    layout = _layout(height, title, _uirev(snap, "2d"))
    layout["xaxis"] = {"range": xr, "showgrid": False, "zeroline": False, "constrain": "domain"}
    layout["yaxis"] = {
        "range": yr,
        "showgrid": False,
        "zeroline": False,
        "scaleanchor": "x",
        "scaleratio": 1,
        "constrain": "domain",
    }
    return {"data": traces, "layout": layout}


def _arrows(grid: Any, xr: Sequence[float], yr: Sequence[float]) -> dict[str, Any]:
    """−∇φ as short segments with arrow heads; the longest arrow spans about one lattice cell."""
    u, v = np.asarray(grid.u, dtype=np.float64), np.asarray(grid.v, dtype=np.float64)
    speed = np.hypot(u, v)
    finite = np.isfinite(speed)
    top = float(speed[finite].max()) if finite.any() else 0.0
    cells = max(2, round(math.sqrt(len(u))))
    cell = min(xr[1] - xr[0], yr[1] - yr[0]) / (cells + 1)
    scale = 0.9 * cell / top if top > 0 else 0.0
    P = len(u)
    xs = np.full((P, 3), np.nan, dtype=np.float32)
    ys = np.full((P, 3), np.nan, dtype=np.float32)
    xs[:, 0], ys[:, 0] = grid.ax, grid.ay
    xs[:, 1] = grid.ax + scale * np.where(finite, u, 0.0)
    ys[:, 1] = grid.ay + scale * np.where(finite, v, 0.0)
    sizes = np.zeros((P, 3), dtype=np.float32)
    sizes[:, 1] = 7
    return {
        "type": "scatter",
        "x": xs.ravel(),
        "y": ys.ravel(),
        "mode": "lines+markers",
        "line": {"width": 1, "color": "rgba(40, 40, 40, 0.55)"},
        "marker": {
            "symbol": "arrow",
            "size": sizes.ravel(),
            "angleref": "previous",
            "color": "rgba(40, 40, 40, 0.7)",
        },
        "name": f"−∇φ (max |∇φ| {top:.3g})",
        "hoverinfo": "skip",
        "connectgaps": False,
    }


def _spec_3d(
    snap: Snapshot, member: int, color: str, show_target: bool, height: int, title: str
) -> dict[str, Any]:
    traces = []
    if show_target:
        t = snap.target[member]
        traces.append(
            _markers("scatter3d", t[:, 0], t[:, 1], TARGET_COLOR, 2, f"target (N = {snap.N})", t[:, 2])
        )
    p = snap.particles[member]
    traces.append(_markers("scatter3d", p[:, 0], p[:, 1], color, 2, f"particles (M = {snap.M})", p[:, 2]))
    xr, yr, zr = axis_ranges(snap, member, dims=(0, 1, 2))
    layout = _layout(height, title, _uirev(snap, "3d"))
    layout["scene"] = {
        "xaxis": {"range": xr, "title": {"text": "x1"}},
        "yaxis": {"range": yr, "title": {"text": "x2"}},
        "zaxis": {"range": zr, "title": {"text": "x3"}},
        "aspectmode": "cube",
        "uirevision": "scene",
    }
    return {"data": traces, "layout": layout}


def _spec_projected(
    snap: Snapshot, member: int, color: str, show_target: bool, height: int, title: str
) -> dict[str, Any]:
    if snap.d == 1:
        mean, w = np.zeros(1), np.array([[1.0, 0.0]])
    else:
        mean, w = projection_basis(snap.target[member])
    p = (snap.particles[member] - mean) @ w
    t = (snap.target[member] - mean) @ w
    if snap.d == 1:  # spread 1-D points vertically so they can be seen
        p[:, 1] = np.linspace(-0.5, 0.5, len(p))
        t[:, 1] = np.linspace(-0.5, 0.5, len(t))
    traces = []
    if show_target:
        traces.append(_markers("scattergl", t[:, 0], t[:, 1], TARGET_COLOR, 4, f"target (N = {snap.N})"))
    traces.append(_markers("scattergl", p[:, 0], p[:, 1], color, 5, f"particles (M = {snap.M})"))
    both = np.concatenate([t, p])
    both = both[np.isfinite(both).all(axis=1)]
    tlo, thi = nondegenerate_box(t.min(axis=0), t.max(axis=0))  # a target on a line or at one point
    span = thi - tlo
    lo = np.maximum(both.min(axis=0), tlo - 5 * span) - 0.05 * span
    hi = np.minimum(both.max(axis=0), thi + 5 * span) + 0.05 * span
    layout = _layout(height, title, _uirev(snap, "proj"))
    xt, yt = ("x", "") if snap.d == 1 else (f"PC1 of the target (d = {snap.d})", "PC2 of the target")
    layout["xaxis"] = {"range": [float(lo[0]), float(hi[0])], "title": {"text": xt}, "showgrid": False}
    layout["yaxis"] = {
        "range": [float(lo[1]), float(hi[1])],
        "title": {"text": yt},
        "showgrid": False,
        "showticklabels": snap.d > 1,
    }
    return {"data": traces, "layout": layout}


def _mosaic(images: np.ndarray, shape: tuple[int, int], cols: int) -> np.ndarray:
    """Tile (n, h·w) images into one array with a one-pixel NaN gap."""
    h, w = shape
    n = images.shape[0]
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[i].reshape(h, w)
    return out


def _two_panels(titles: tuple[str, str], gap: float = 0.1) -> dict[str, Any]:
    """Layout pieces for two side-by-side subplots (what make_subplots(1, 2) builds)."""
    w = (1.0 - gap) / 2
    return {
        "xaxis": {"anchor": "y", "domain": [0.0, w]},
        "yaxis": {"anchor": "x", "domain": [0.0, 1.0]},
        "xaxis2": {"anchor": "y2", "domain": [1.0 - w, 1.0]},
        "yaxis2": {"anchor": "x2", "domain": [0.0, 1.0]},
        "annotations": [
            {
                "text": text,
                "x": x,
                "xref": "paper",
                "y": 1.0,
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 13},
            }
            for text, x in zip(titles, (w / 2, 1.0 - w / 2), strict=True)
        ],
    }


def digits_figure(
    snap: Snapshot,
    member: int = 0,
    *,
    image_shape: tuple[int, int] = (8, 8),
    n_images: int = 24,
    cols: int = 6,
    height: int = 420,
    validate: bool = True,
) -> go.Figure:
    """The first ``n_images`` particles (left) and target points (right) as gray images."""
    h, w = image_shape
    if h * w != snap.d:
        raise ValueError(f"image_shape {image_shape} does not match the dimension d = {snap.d}")
    p = np.clip(np.nan_to_num(snap.particles[member][:n_images], nan=0.0), 0.0, 1.0)
    t = np.clip(snap.target[member][:n_images], 0.0, 1.0)
    particles_title = f"particles (n = {snap.n}, t = {short(float(snap.t[member]))})"
    layout = _two_panels((particles_title, "target"), gap=0.04)
    traces = []
    for i, imgs in enumerate((p, t)):
        suffix = "" if i == 0 else "2"
        traces.append(
            {
                "type": "heatmap",
                "z": _mosaic(imgs, image_shape, cols)[::-1],
                "colorscale": "Greys",
                "zmin": 0.0,
                "zmax": 1.0,
                "showscale": False,
                "hoverinfo": "skip",
                "xaxis": "x" + suffix,
                "yaxis": "y" + suffix,
            }
        )
        layout["xaxis" + suffix].update(visible=False)
        layout["yaxis" + suffix].update(visible=False, scaleanchor="x" + suffix, scaleratio=1)
    layout.update(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, uirevision="digits")
    layout["plot_bgcolor"] = "white"
    return _finish({"data": traces, "layout": layout}, validate)


# ---------------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------------


def history_figure(
    snap: Snapshot,
    members: Sequence[int] | None = None,
    *,
    height: int = 300,
    labels: Sequence[str] | None = None,
    validate: bool = True,
) -> go.Figure:
    """Kinetic energy I (eq. 3.3) and the divergence estimate against physical time t, log–log.

    Points at t = 0 and non-positive values cannot be shown on log axes and are left out; an ✕ marks
    the time a member diverged."""
    members = list(range(snap.K)) if members is None else list(members)
    labels = list(labels) if labels is not None else member_labels(snap.configs)
    layout = _two_panels(("kinetic energy I (3.3)", "divergence estimate D"))
    h = snap.history
    traces = []
    for k in members:
        color = MEMBER_COLORS[k % len(MEMBER_COLORS)]
        t = h.time[:, k] if len(h) else np.zeros(0)
        for col, values in ((1, h.kinetic_energy), (2, h.divergence)):
            axes = {"xaxis": "x" if col == 1 else "x2", "yaxis": "y" if col == 1 else "y2"}
            y = values[:, k] if len(h) else np.zeros(0)
            ok = np.isfinite(t) & np.isfinite(y) & (t > 0) & (y > 0)
            traces.append(
                {
                    "type": "scatter",
                    "x": _f32(t[ok]),
                    "y": _f32(y[ok]),
                    "mode": "lines",
                    "line": {"color": color, "width": 1.6},
                    "name": labels[k],
                    "legendgroup": str(k),
                    "showlegend": col == 1,
                    "hovertemplate": "t = %{x:.4g}<br>%{y:.3g}<extra>" + labels[k] + "</extra>",
                    **axes,
                }
            )
            at = snap.diverged_at[k]
            if at is not None and at > 0:
                last = y[np.isfinite(y) & (y > 0)]
                traces.append(
                    {
                        "type": "scatter",
                        "x": [float(at)],
                        "y": [float(last[-1]) if last.size else 1.0],
                        "mode": "markers",
                        "marker": {"symbol": "x", "size": 11, "color": color},
                        "name": f"{labels[k]} diverged",
                        "legendgroup": str(k),
                        "showlegend": False,
                        "hovertemplate": f"diverged at t = {at:.4g}<extra></extra>",
                        **axes,
                    }
                )
    for name in ("xaxis", "xaxis2"):
        layout[name].update(type="log", title={"text": "t"})
    for name in ("yaxis", "yaxis2"):
        layout[name].update(type="log", exponentformat="power")
    layout.update(
        height=height,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
        uirevision="history",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.12, "xanchor": "right", "x": 1.0},
        plot_bgcolor="white",
    )
    return _finish({"data": traces, "layout": layout}, validate)


def distances_figure(snap: Snapshot, *, height: int = 300, validate: bool = True) -> go.Figure:
    """W₂ to the target against physical time t of the generated points (green) and of the trained
    particles (the member's colour), member 0; an empty figure that says so without generated points."""
    s = snap.distances
    traces: list[dict[str, Any]] = []
    if s is not None and len(s):
        for values, name, color, dash in (
            (s.generated, f"generated (G = {snap.generated.shape[1] if snap.generated is not None else 0})",
             GENERATED_COLOR, "solid"),
            (s.particles, f"trained particles (M = {snap.M})", MEMBER_COLORS[0], "dot"),
        ):  # fmt: skip
            ok = np.isfinite(s.time) & np.isfinite(values)
            traces.append(
                {
                    "type": "scatter",
                    "x": _f32(s.time[ok]),
                    "y": _f32(values[ok]),
                    "mode": "lines+markers",
                    "marker": {"size": 4, "color": color},
                    "line": {"color": color, "width": 1.6, "dash": dash},
                    "name": name,
                    "hovertemplate": "t = %{x:.4g}<br>W₂ = %{y:.4g}<extra>" + name + "</extra>",
                }
            )
    layout = _layout(height, "W₂ to the target", "distances")
    layout["xaxis"] = {"title": {"text": "t"}, "rangemode": "tozero"}
    layout["yaxis"] = {"title": {"text": "W₂"}, "rangemode": "tozero"}
    layout["legend"] = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0}
    if not traces:
        layout["annotations"] = [
            {"text": "no generated points in this run", "showarrow": False, "xref": "paper", "yref": "paper",
             "x": 0.5, "y": 0.5}
        ]  # fmt: skip
    return _finish({"data": traces, "layout": layout}, validate)


# ---------------------------------------------------------------------------------------------------
# Animation
# ---------------------------------------------------------------------------------------------------


def animation_figure(
    frames: Sequence[Frame],
    target: np.ndarray,
    *,
    extent: tuple[np.ndarray, np.ndarray] | None = None,
    title: str = "GPA particle flow",
    duration_ms: int = 120,
) -> go.Figure:
    """A Plotly figure with one frame per recorded state (2-D scatter; 3-D for d = 3; PCA plane for
    more dimensions) and play/pause buttons plus a slider."""
    if not frames:
        raise ValueError("no frames were recorded yet: play the flow first")
    target = np.asarray(target, dtype=np.float64)
    d = target.shape[1]
    three = d == 3
    if d in (2, 3):

        def project(x: np.ndarray) -> np.ndarray:
            return x
    else:
        mean, w = projection_basis(target) if d > 1 else (np.zeros(1), np.array([[1.0, 0.0]]))

        def project(x: np.ndarray) -> np.ndarray:
            return (np.asarray(x, dtype=np.float64) - mean) @ w

    def scatter(points: np.ndarray, color: str, name: str, size: float) -> go.Scatter | go.Scatter3d:
        pts = project(points)
        if three:
            return go.Scatter3d(
                x=_f32(pts[:, 0]),
                y=_f32(pts[:, 1]),
                z=_f32(pts[:, 2]),
                mode="markers",
                marker=dict(size=size / 2, color=color),
                name=name,
            )
        return go.Scatter(
            x=_f32(pts[:, 0]),
            y=_f32(pts[:, 1]),
            mode="markers",
            marker=dict(size=size, color=color),
            name=name,
        )

    tgt_trace = scatter(target, TARGET_COLOR, "target", 4)
    first = frames[0]
    fig = go.Figure(data=[tgt_trace, scatter(first.particles, MEMBER_COLORS[0], "particles", 5)])
    fig.frames = [
        go.Frame(
            data=[scatter(f.particles, MEMBER_COLORS[0], "particles", 5)],
            traces=[1],
            name=str(f.step),
            layout=dict(title=dict(text=f"{title} — n = {f.step}, t = {f.t:.4g}")),
        )
        for f in frames
    ]
    play = dict(frame=dict(duration=duration_ms, redraw=three), fromcurrent=True, transition=dict(duration=0))
    fig.update_layout(
        title=dict(text=f"{title} — n = {first.step}, t = {first.t:.4g}"),
        height=560,
        plot_bgcolor="white",
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.0,
                y=-0.08,
                xanchor="left",
                yanchor="top",
                buttons=[
                    dict(label="Play", method="animate", args=[None, play]),
                    dict(
                        label="Pause",
                        method="animate",
                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")],
                    ),
                ],
            )
        ],
        sliders=[
            dict(
                x=0.15,
                len=0.85,
                y=-0.05,
                currentvalue=dict(prefix="step "),
                steps=[
                    dict(
                        label=str(f.step),
                        method="animate",
                        args=[[str(f.step)], dict(mode="immediate", frame=dict(duration=0, redraw=three))],
                    )
                    for f in frames
                ],
            )
        ],
    )
    if not three:
        pts = np.concatenate([project(target)] + [project(f.particles) for f in frames])
        pts = pts[np.isfinite(pts).all(axis=1)]
        if extent is not None and d == 2:
            lo, hi = np.asarray(extent[0]), np.asarray(extent[1])
        else:
            lo, hi = pts.min(axis=0), pts.max(axis=0)
        lo, hi = nondegenerate_box(lo, hi)
        fig.update_xaxes(range=[float(lo[0]), float(hi[0])], showgrid=False)
        fig.update_yaxes(range=[float(lo[1]), float(hi[1])], showgrid=False, scaleanchor="x", scaleratio=1)
    return fig


def animation_html(fig: go.Figure) -> str:
    """A self-contained HTML page (Plotly's JavaScript embedded: opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True, auto_play=False)
