"""Presets: runs that reproduce the paper's figures, stored as JSON files in ``assets/presets/``.

A preset file holds::

    {
      "id": "fig2-3-mixture",                 # unique, [a-z0-9-]
      "title": "Four Gaussian wells: the L sweep",
      "paper": "Fig. 2–3",                     # where in the paper
      "notes": "…",                             # what it shows, and any deviation from the paper
      "source": {"name": "gaussian", "params": {"std": 0.5}},
      "target": {"name": "mixture", "params": {"std": 0.5, "spacing": 4}},
      "M": 200, "N": 200, "dim": 2, "data_seed": 0,
      "config": {FlowConfig fields shared by all members},
      "members": [{"label": "L = 1", "L": 1}, {"label": "L = ∞", "L": "inf"}],   # optional
      "default_member": 0,
      "rivals": [{"label": "MMD σ = 0.5", "flow": "mmd", "width": 0.5}],   # optional, compare page
      "image_shape": [8, 8]                     # optional: show points as images
    }

``rivals`` are flows that are not GPA (RivalConfig fields: flow, kernel, width, …), run beside the
members on the compare page; their Δt, steps and solver are the shared config's unless given.

Members differ only in ``PER_MEMBER_FIELDS`` (f, α, L, Δt, seed, …); the playground runs one member
at a time, the compare page all of them. Sources are sampled with ``data_seed`` and targets with
``data_seed + 1``, so a preset always starts from the same points.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gpa_core.config import ConfigError, FlowConfig, RivalConfig, check_batch
from gpa_core.data.datasets import DatasetError, get_dataset, sample

__all__ = [
    "PRESET_DIR",
    "DataSpec",
    "Preset",
    "PresetError",
    "get_preset",
    "list_presets",
    "load_preset",
    "parse_preset",
]

PRESET_DIR = Path(__file__).resolve().parents[2] / "assets" / "presets"
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_KEYS = {
    "id",
    "title",
    "paper",
    "notes",
    "source",
    "target",
    "M",
    "N",
    "dim",
    "data_seed",
    "config",
    "members",
    "default_member",
    "image_shape",
    "rivals",
}


class PresetError(ValueError):
    """A preset file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class DataSpec:
    """A dataset by name with its parameters (validated against the dataset registry)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def sample(self, n: int, *, seed: int, dim: int | None) -> np.ndarray:
        """``n`` points of this dataset drawn with ``seed``, an ``(n, d)`` float64 array (d = ``dim``, or the
        dataset's default when None; a ``file`` dataset gives at most its rows)."""
        return sample(self.name, n, seed=seed, dim=dim, **self.params)

    def to_dict(self) -> dict[str, Any]:
        """The ``{"name": ..., "params": {...}}`` object a preset file holds."""
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class Preset:
    """One validated preset (see the module docstring for the file format)."""

    id: str
    title: str
    paper: str
    notes: str
    source: DataSpec
    target: DataSpec
    M: int
    N: int
    dim: int
    data_seed: int
    config: FlowConfig
    members: tuple[tuple[str, FlowConfig], ...]
    default_member: int = 0
    image_shape: tuple[int, int] | None = None
    rivals: tuple[tuple[str, RivalConfig], ...] = ()

    @property
    def configs(self) -> tuple[FlowConfig, ...]:
        """All members' configurations (an ensemble for the compare page)."""
        return tuple(c for _, c in self.members)

    @property
    def labels(self) -> tuple[str, ...]:
        """The members' labels, in order."""
        return tuple(label for label, _ in self.members)

    def member_config(self, k: int | None = None) -> FlowConfig:
        """Member ``k``'s configuration (the default member's when ``k`` is None)."""
        k = self.default_member if k is None else k
        if not 0 <= k < len(self.members):
            raise PresetError(f"preset '{self.id}' has members 0..{len(self.members) - 1}; got {k}")
        return self.members[k][1]

    def sample_source(self) -> np.ndarray:
        """The source points, ``(M, dim)`` float64, drawn with ``data_seed``."""
        return self.source.sample(self.M, seed=self.data_seed, dim=self.dim)

    def sample_target(self) -> np.ndarray:
        """The target points, ``(N, dim)`` float64, drawn with ``data_seed + 1``."""
        return self.target.sample(self.N, seed=self.data_seed + 1, dim=self.dim)


def _fail(where: str, message: str) -> PresetError:
    return PresetError(f"{where}: {message}")


def _data_spec(raw: Any, where: str, key: str, dim: int) -> DataSpec:
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise _fail(where, f"'{key}' must be an object with a dataset 'name' (and optional 'params')")
    extra = set(raw) - {"name", "params"}
    if extra:
        raise _fail(where, f"'{key}' has unknown field(s) {', '.join(sorted(extra))}")
    params = raw.get("params", {})
    if not isinstance(params, Mapping):
        raise _fail(where, f"'{key}.params' must be an object of parameter: value pairs")
    try:
        ds = get_dataset(raw["name"])
        values = ds.validate_params(dict(params), fill_defaults=False)
        ds.resolve_dim(dim)
    except DatasetError as exc:
        raise _fail(where, f"'{key}': {exc}") from None
    return DataSpec(ds.name, values)


def _positive_int(raw: Mapping[str, Any], key: str, where: str, high: int, default: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise _fail(where, f"'{key}' must be a whole number from 1 to {high}; got {value!r}")
    return value


def parse_preset(data: Any, where: str = "preset") -> Preset:
    """Validate a preset's JSON object into a :class:`Preset`; errors name ``where`` and the field."""
    if not isinstance(data, Mapping):
        raise _fail(where, "a preset must be a JSON object")
    unknown = set(data) - _KEYS
    if unknown:
        raise _fail(
            where, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_KEYS))}"
        )
    for key in ("id", "title", "source", "target", "M", "N", "config"):
        if key not in data:
            raise _fail(where, f"missing field '{key}'")
    pid = data["id"]
    if not isinstance(pid, str) or not _ID.match(pid):
        raise _fail(where, f"'id' must be lower-case letters, digits and '-'; got {pid!r}")
    for key in ("title", "paper", "notes"):
        if not isinstance(data.get(key, ""), str):
            raise _fail(where, f"'{key}' must be text")
    dim = _positive_int(data, "dim", where, 4096, default=2)
    M = _positive_int(data, "M", where, 100_000)
    N = _positive_int(data, "N", where, 100_000)
    seed = data.get("data_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31 - 1:
        raise _fail(where, f"'data_seed' must be a non-negative whole number; got {seed!r}")
    source = _data_spec(data["source"], where, "source", dim)
    target = _data_spec(data["target"], where, "target", dim)
    if not isinstance(data["config"], Mapping):
        raise _fail(where, "'config' must be an object of FlowConfig fields")
    try:
        base = FlowConfig.from_dict(data["config"])
    except (ConfigError, TypeError) as exc:
        raise _fail(where, f"'config': {exc}") from None
    members_raw = data.get("members") or [{"label": ""}]
    if not isinstance(members_raw, list) or not all(isinstance(m, Mapping) for m in members_raw):
        raise _fail(where, "'members' must be a list of objects")
    members = []
    for i, m in enumerate(members_raw):
        changes = {k: v for k, v in m.items() if k != "label"}
        label = m.get("label", "")
        if not isinstance(label, str):
            raise _fail(where, f"members[{i}].label must be text")
        try:
            cfg = FlowConfig.from_dict({**base.to_dict(), **changes})
        except (ConfigError, TypeError) as exc:
            raise _fail(where, f"members[{i}]: {exc}") from None
        members.append((label or _auto_label(cfg), cfg))
    try:
        check_batch([c for _, c in members])
    except ConfigError as exc:
        raise _fail(where, f"'members': {exc}") from None
    default = data.get("default_member", 0)
    if isinstance(default, bool) or not isinstance(default, int) or not 0 <= default < len(members):
        raise _fail(where, f"'default_member' must be in 0..{len(members) - 1}; got {default!r}")
    rivals = _rivals(data.get("rivals", []), base, where)
    return Preset(
        id=pid,
        title=data["title"],
        paper=data.get("paper", ""),
        notes=data.get("notes", ""),
        source=source,
        target=target,
        M=M,
        N=N,
        dim=dim,
        image_shape=_image_shape(data.get("image_shape"), where, dim),  # checked last, against dim
        data_seed=seed,
        config=base,
        members=tuple(members),
        default_member=default,
        rivals=rivals,
    )


def _rivals(raw: Any, base: FlowConfig, where: str) -> tuple[tuple[str, RivalConfig], ...]:
    """The preset's rival flows; Δt, steps and solver default to the shared configuration's."""
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        raise _fail(where, "'rivals' must be a list of objects")
    out = []
    for i, r in enumerate(raw):
        label = r.get("label", "")
        if not isinstance(label, str):
            raise _fail(where, f"rivals[{i}].label must be text")
        shared = {"dt": base.dt, "steps": base.steps, "solver": base.solver}
        try:
            cfg = RivalConfig.from_dict({**shared, **{k: v for k, v in r.items() if k != "label"}})
        except (ConfigError, TypeError) as exc:
            raise _fail(where, f"rivals[{i}]: {exc}") from None
        out.append((label or cfg.name, cfg))
    return tuple(out)


def _image_shape(shape: Any, where: str, dim: int) -> tuple[int, int] | None:
    """A preset's optional ``image_shape``: ``[height, width]`` with height·width = ``dim``."""
    if shape is None:
        return None
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(v, int) and v > 0 for v in shape)
        or shape[0] * shape[1] != dim
    ):
        raise _fail(where, f"'image_shape' must be [height, width] with height·width = dim = {dim}")
    return (shape[0], shape[1])


def _auto_label(c: FlowConfig) -> str:
    f = {"kl": "KL", "alpha": f"α = {c.alpha:g}", "reverse_kl": "reverse KL", "js": "JS"}[c.f]
    return f"{f}, L = {'∞' if c.L == float('inf') else f'{c.L:g}'}"


def load_preset(path: str | Path) -> Preset:
    """Read and validate one preset file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PresetError(f"{path.name}: cannot read the preset file ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_preset(data, where=path.name)


def list_presets(directory: str | Path | None = None) -> list[Preset]:
    """Every preset in ``directory`` (default ``assets/presets``), sorted by file name; a broken file
    raises :class:`PresetError` naming it (presets ship with the app, so that is a bug to fix)."""
    folder = Path(directory) if directory is not None else PRESET_DIR
    presets = [load_preset(p) for p in sorted(folder.glob("*.json"))]
    ids = [p.id for p in presets]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise PresetError(f"{folder}: duplicate preset id(s) {', '.join(dup)}")
    return presets


def get_preset(preset_id: str, directory: str | Path | None = None) -> Preset:
    """The preset with this id."""
    for p in list_presets(directory):
        if p.id == preset_id:
            return p
    known = ", ".join(p.id for p in list_presets(directory))
    raise PresetError(f"no preset '{preset_id}'; known presets: {known}")
