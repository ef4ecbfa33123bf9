"""``python -m gpa_core``: run a GPA flow, a rival flow, or estimate a divergence from the command line.

    python -m gpa_core run --source gaussian:std=0.5 --target mixture:std=0.5 --L 1 --steps 500 --json
    python -m gpa_core rival --source gaussian:std=0.5 --target mixture:std=0.5 --flow mmd --json
    python -m gpa_core rival --source gaussian:std=0.5 --target mixture:std=0.5 --flow sinkhorn --width 0.3
    python -m gpa_core divergence P.csv Q.csv --f alpha --alpha 2 --json
    python -m gpa_core divergence P.csv Q.csv --exact --L 1 --json   # over all L-Lipschitz φ
    python -m gpa_core integrate SOURCE TARGET --method gpa,combat --json

Bad arguments exit with status 2 and one line on stderr; a run that diverges is an outcome, not a
crash (exit 0, status "diverged").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpa_core.config import (
    FIELDS,
    RIVAL_FIELDS,
    ConfigError,
    FlowConfig,
    RivalConfig,
    authors_numerics,
    cli_fields,
    field_from_text,
    field_to_text,
)

EXIT_USAGE = 2
SMALL_POINTS = 4000  # M + N below this: one Torch thread


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, not argparse's usage dump
        raise CLIError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return value


def _field_type(name: str) -> Any:
    """The argparse type of a FlowConfig field's flag: its text form (:func:`field_from_text`); a whole
    number that must be at least 1 is said so at once (``--steps 0``), other ranges by FlowConfig."""
    info = FIELDS[name]
    if info.kind == "int" and info.low == 1:
        return _positive_int

    def parse(text: str) -> Any:
        try:
            return field_from_text(name, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _add_config_flags(p: argparse.ArgumentParser, command: str) -> None:
    """A flag for every FlowConfig field whose metadata names ``command`` (``--inner-steps`` for
    inner_steps), with the field's default, help and choices."""
    for name in cli_fields(command):
        info = FIELDS[name]
        help_text = f"{info.help} (default {field_to_text(name, info.default)})"
        flag = "--" + name.replace("_", "-")
        if info.kind == "choice":
            p.add_argument(flag, dest=name, choices=info.choices, default=info.default, help=help_text)
        else:
            p.add_argument(flag, dest=name, type=_field_type(name), default=info.default, help=help_text)


def _rival_text(value: Any) -> str:
    """A RivalConfig value as a flag's text: ``none`` for None (from the data), numbers as Python writes
    them."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _rival_field_type(name: str) -> Any:
    """The argparse type of a RivalConfig field's flag: a whole number (one that must be at least 1 is
    said so at once), a number, true/false or text; an optional field also takes ``none``, ``auto`` or
    an empty string (None: from the data). Ranges are checked by RivalConfig, naming the field."""
    info = RIVAL_FIELDS[name]
    if info.kind == "int" and info.low == 1 and not info.optional:
        return _positive_int

    def parse(text: str) -> Any:
        raw = str(text)
        text = raw.strip()
        if info.optional and text.lower() in ("", "none", "auto"):
            return None
        if info.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{name} must be a whole number; got {raw!r}") from None
        if info.kind == "float":
            try:
                return float(text)
            except ValueError:
                extra = " or none (from the data)" if info.optional else ""
                raise argparse.ArgumentTypeError(f"{name} must be a number{extra}; got {raw!r}") from None
        if info.kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise argparse.ArgumentTypeError(f"{name} must be true or false; got {raw!r}")
            return text.lower() in ("true", "1")
        return raw

    return parse


def _add_rival_flags(p: argparse.ArgumentParser) -> None:
    """A flag for every RivalConfig field (``--sinkhorn-iters`` for sinkhorn_iters), with the field's
    default, help and choices: a field added to RivalConfig gets a flag."""
    for name, info in RIVAL_FIELDS.items():
        help_text = info.help
        if info.only_if is not None:
            help_text += f"; read only with --{info.only_if[0].replace('_', '-')} {info.only_if[1]}"
        help_text += f" (default {_rival_text(info.default)})"
        flag = "--" + name.replace("_", "-")
        if info.kind == "choice":
            p.add_argument(flag, dest=name, choices=info.choices, default=info.default, help=help_text)
        else:
            p.add_argument(
                flag, dest=name, type=_rival_field_type(name), default=info.default, help=help_text
            )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m gpa_core", description="Lipschitz-regularized generative particle flows (GPA)."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="transport source particles to a target sample")
    run.add_argument("--source", required=True, help="SPEC: name[:key=value,...] or file:PATH")
    run.add_argument("--target", required=True, help="SPEC: name[:key=value,...] or file:PATH")
    run.add_argument("--M", type=_positive_int, default=200, help="number of particles (default 200)")
    run.add_argument("--N", type=_positive_int, default=200, help="number of target samples (default 200)")
    run.add_argument("--dim", type=_positive_int, default=None, help="dimension for datasets that allow any")
    _add_config_flags(run, "run")
    run.add_argument(
        "--numerics",
        choices=["paper", "authors"],
        default="paper",
        help="paper: spectral norm, trained ν (default); authors: their code's choices (Frobenius, He init, "
        "Adam reset, naive Donsker–Varadhan)",
    )
    run.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="compiled path: 2 splits the run's particles and target over two threads "
        "(about 1.7x faster on large runs, the same numbers bit for bit; default 1)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    run.add_argument("--save", type=Path, default=None, help="write an .npz with the history and particles")

    rival = sub.add_parser(
        "rival", help="transport source particles to a target sample by a rival flow (MMD or Sinkhorn)"
    )
    rival.add_argument("--source", required=True, help="SPEC: name[:key=value,...] or file:PATH")
    rival.add_argument("--target", required=True, help="SPEC: name[:key=value,...] or file:PATH")
    rival.add_argument("--M", type=_positive_int, default=200, help="number of particles (default 200)")
    rival.add_argument("--N", type=_positive_int, default=200, help="number of target samples (default 200)")
    rival.add_argument(
        "--dim", type=_positive_int, default=None, help="dimension for datasets that allow any"
    )
    _add_rival_flags(rival)
    if "seed" not in RIVAL_FIELDS:
        rival.add_argument(
            "--seed",
            type=_field_type("seed"),
            default=0,
            help="seed of the data: the source is drawn with it, the target with it + 1 (default 0)",
        )
    rival.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    rival.add_argument("--save", type=Path, default=None, help="write an .npz with the history and particles")

    div = sub.add_parser("divergence", help="estimate D_f^{Γ_L}(P‖Q) between two samples")
    div.add_argument("p_file", type=Path)
    div.add_argument("q_file", type=Path)
    _add_config_flags(div, "divergence")
    div.add_argument(
        "--exact",
        action="store_true",
        help="the supremum over all L-Lipschitz φ (a convex program over φ's values at the points, "
        "certified by its dual) instead of a trained network's estimate; needs a finite --L",
    )
    div.add_argument(
        "--exact-points",
        type=_positive_int,
        default=None,
        metavar="N",
        help="with --exact: at most N points of each sample, drawn with --seed (the program has M·N "
        "constraints; about 500 + 500 points take seconds)",
    )
    div.add_argument("--json", action="store_true")
    from gpa_core.genes.pipeline import add_parser as add_integrate_parser

    add_integrate_parser(sub)  # integrate: the latent page's pipeline (gpa_core.genes.pipeline)
    return parser


def _set_threads(points: int) -> None:
    import torch

    if points < SMALL_POINTS:  # small steps are dominated by per-op overhead: one thread avoids contention
        torch.set_num_threads(1)


def _compile_kernel_first(cfg: FlowConfig) -> None:
    """A command-line run with engine auto waits for the compiled kernel (once per machine; later
    runs load it from Numba's disk cache in about a second) rather than leave the compile unfinished
    at exit, which would make every later run start it again."""
    from gpa_core.engine import kernel

    if cfg.engine != "auto" or not kernel.available() or kernel.ready():
        return
    if not kernel.cache_is_warm():
        print("compiling the GPA kernel (once per machine, about a minute) …", file=sys.stderr)
    kernel.ensure_compiled(block=True)


def _print_notes(notes: Sequence[tuple[str, object]]) -> None:
    """What the file readers noticed (a dropped index column, a constant column, ...), on stderr."""
    for where, note in notes:
        print(f"note: {where}: {note}", file=sys.stderr)


def _progress(last_report: float, n: int, steps: int, t: float) -> float:
    """Print ``step n/steps  t = …`` on stderr if the last report is over 2 s old; the time of the last
    report."""
    now = time.perf_counter()
    if now - last_report <= 2.0:
        return last_report
    print(f"step {n}/{steps}  t = {t:.4g}", file=sys.stderr)
    return now


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from gpa_core.engine.flow import GPAFlow

    try:
        cfg = FlowConfig(**{name: getattr(args, name) for name in cli_fields("run")})
        if args.numerics == "authors":
            cfg = authors_numerics(cfg)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    source, target, notes = _samples(args, cfg.dtype)
    _print_notes(notes)  # only once the run is going ahead: an error stays one line
    _set_threads(len(source) + len(target))
    _compile_kernel_first(cfg)
    try:
        flow = GPAFlow(source, target, cfg)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    flow.threads_per_member = args.threads
    flow.kernel_threads = max(flow.kernel_threads, args.threads)
    frames = [flow.particles()[0]] if args.save else []
    # --save keeps the particles of every recorded step; otherwise step in chunks (a call has a
    # fixed cost about as large as a small step's arithmetic)
    chunk = cfg.record_every if args.save else cfg.record_every * max(1, 100 // cfg.record_every)
    start = time.perf_counter()
    last_report = start
    while not flow.finished(0):
        flow.step(chunk)
        if args.save:
            frames.append(flow.particles()[0])
        last_report = _progress(last_report, flow.n, cfg.steps, float(flow.t[0]))
    seconds = time.perf_counter() - start
    s = flow.summary()[0]
    result = {
        **_outcome(s),
        "divergence": _json_float(s.divergence),
        "max_speed": _json_float(s.max_speed),
        "seconds": seconds,
        "steps_per_second": s.steps / seconds if seconds > 0 else None,
        "device": str(flow.device),
        "engine": flow.engine,
        "M": flow.M,
        "N": flow.N,
        "d": flow.d,
        "config": cfg.to_dict(),
    }
    if args.save:
        h = flow.history
        path = args.save if args.save.suffix == ".npz" else args.save.with_suffix(".npz")
        try:
            np.savez_compressed(
                path,
                time=h.time[:, 0],
                step=h.step,
                kinetic_energy=h.kinetic_energy[:, 0],
                divergence=h.divergence[:, 0],
                max_speed=h.max_speed[:, 0],
                particles=np.stack(frames[: len(h)]).astype(np.float32),  # Y_n at each recorded step n
                final_particles=frames[-1],
                target=flow.target()[0],
                config=np.array(cfg.to_json()),
            )
        except OSError as exc:
            raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
        result["saved"] = str(path)
    return result


def _samples(args: argparse.Namespace, dtype: str) -> tuple[np.ndarray, np.ndarray, list[tuple[str, object]]]:
    """The source (``--seed``) and target (``--seed`` + 1) of ``run`` and ``rival``, and what reading
    their files noticed; CLIError on a bad spec or mismatched dimensions."""
    from gpa_core.data.datasets import DatasetError, sample_spec, spec_notes
    from gpa_core.data.points import check_precision, check_source

    try:
        source = sample_spec(args.source, args.M, seed=args.seed, dim=args.dim)
        target = sample_spec(args.target, args.N, seed=args.seed + 1, dim=args.dim)
        check_source(source, f"--source {args.source}")
        check_precision(source, dtype, f"--source {args.source}")
        check_precision(target, dtype, f"--target {args.target}")
        notes: list[tuple[str, object]] = [
            (f"--{side} {spec}", note)
            for side, spec in (("source", args.source), ("target", args.target))
            for note in spec_notes(spec)
        ]
    except (DatasetError, ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    if source.shape[1] != target.shape[1]:
        raise CLIError(
            f"source and target dimensions differ: {source.shape[1]} vs {target.shape[1]} (use --dim)"
        )
    return source, target, notes


def _rival(args: argparse.Namespace) -> dict[str, Any]:
    """``rival``: one MMD or Sinkhorn-divergence flow (:class:`~gpa_core.rivals.flow.RivalFlow`) from
    the source particles toward the target sample, reported like ``run``."""
    from gpa_core.ot import wasserstein2
    from gpa_core.rivals.flow import RivalFlow

    try:
        cfg = RivalConfig(**{name: getattr(args, name) for name in RIVAL_FIELDS})
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    source, target, notes = _samples(args, "float64")  # the rival flows compute in float64
    for name, info in RIVAL_FIELDS.items():  # a flag the chosen flow does not read
        if info.only_if is None or getattr(cfg, info.only_if[0]) == info.only_if[1]:
            continue
        if getattr(cfg, name) != info.default:
            flag, other = "--" + name.replace("_", "-"), "--" + info.only_if[0].replace("_", "-")
            note = f"ignored: read only with {other} {info.only_if[1]}"
            notes.append((f"{flag} {_rival_text(getattr(cfg, name))}", note))
    _print_notes(notes)  # only once the run is going ahead: an error stays one line
    _set_threads(len(source) + len(target))
    try:
        flow = RivalFlow(source, target, cfg)
    except (ConfigError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    frames = [flow.particles()] if args.save else []  # Y_n at each recorded step n
    start = time.perf_counter()
    last_report = start
    while not flow.finished():
        stepped = flow.step(1)  # a call costs no more than its steps: the loop over steps is Python's
        if args.save and stepped:
            frames.append(flow.particles())
        last_report = _progress(last_report, flow.n, cfg.steps, flow.t)
    seconds = time.perf_counter() - start
    s = flow.summary()
    final = flow.particles()
    result = {
        **_outcome(s),
        "objective": _json_float(s.objective),
        "objective_name": s.objective_name,
        "width": flow.width,
        "marginal_error": _json_float(s.marginal_error),
        "max_speed": _json_float(s.max_speed),
        "w2": _json_float(wasserstein2(final, target)),
        "seconds": seconds,
        "steps_per_second": s.steps / seconds if seconds > 0 else None,
        "device": str(flow.device),
        "M": flow.M,
        "N": len(target),
        "d": int(target.shape[1]),
        "config": cfg.to_dict(),
    }
    if args.save:
        h = flow.history_arrays()
        path = args.save if args.save.suffix == ".npz" else args.save.with_suffix(".npz")
        rows = len(h["step"])
        try:
            np.savez_compressed(
                path,
                **h,  # step, time, kinetic_energy, objective, max_speed, marginal_error
                particles=np.stack(frames[:rows]).astype(np.float32),  # Y_n at each recorded step n
                final_particles=final,
                target=target,
                config=np.array(json.dumps(cfg.to_dict(), indent=2, sort_keys=True)),
            )
        except OSError as exc:
            raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
        result["saved"] = str(path)
    return result


def _divergence(args: argparse.Namespace) -> dict[str, Any]:
    from gpa_core.data.points import read_points
    from gpa_core.estimate import divergence

    if args.exact_points is not None and not args.exact:
        raise CLIError("--exact-points is for --exact")
    tables = []
    for path in (args.p_file, args.q_file):
        if not path.exists():
            raise CLIError(f"file not found: {path}")
        try:
            tables.append(read_points(path))
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    P, Q = (t.points for t in tables)
    if P.shape[1] != Q.shape[1]:
        raise CLIError(f"P and Q have different dimensions: {P.shape[1]} vs {Q.shape[1]}")
    paths = (args.p_file, args.q_file)
    _print_notes([(str(path), note) for path, t in zip(paths, tables, strict=True) for note in t.notes])
    _set_threads(len(P) + len(Q))
    if args.exact:
        return _exact_divergence(P, Q, args)
    start = time.perf_counter()
    try:
        value = divergence(P, Q, f=args.f, L=args.L, alpha=args.alpha, seed=args.seed)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    return {
        "divergence": _json_float(value),
        "method": "network",
        "f": args.f,
        "alpha": args.alpha if args.f == "alpha" else None,
        "L": "inf" if math.isinf(args.L) else args.L,
        "M": len(P),
        "N": len(Q),
        "seconds": time.perf_counter() - start,
    }


def _exact_divergence(P: np.ndarray, Q: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """``divergence --exact``: the convex program of :mod:`gpa_core.algorithm.exact` on the points
    (or on ``--exact-points`` of each, drawn with ``--seed`` and ``--seed`` + 1)."""
    from gpa_core.algorithm.exact import ExactSolveError, exact_divergence, subsample

    given = (len(P), len(Q))
    if args.exact_points is not None:
        P = subsample(P, args.exact_points, seed=args.seed)
        Q = subsample(Q, args.exact_points, seed=args.seed + 1)
    try:
        result = exact_divergence(P, Q, f=args.f, L=args.L, alpha=args.alpha)
    except (ConfigError, ExactSolveError) as exc:
        raise CLIError(str(exc)) from None
    return {
        "divergence": result.value,
        "method": "exact",
        "f": args.f,
        "alpha": args.alpha if args.f == "alpha" else None,
        "L": args.L,
        "M": result.M,
        "N": result.N,
        "points_given": list(given),
        "upper_bound": result.upper,
        "gap": result.gap,
        "solver": result.solver,
        "constraints": result.constraints,
        "seconds": result.seconds,
    }


def _outcome(s: Any) -> dict[str, Any]:
    """What ``run`` and ``rival`` both report of a flow's summary (a MemberSummary or RivalSummary)."""
    return {
        "status": s.status,
        "diverged_at": s.diverged_at,
        "reason": s.reason or None,
        "steps": s.steps,
        "t": s.t,
        "kinetic_energy": _json_float(s.kinetic_energy),
    }


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "integrate":  # prints its own output
            from gpa_core.genes.pipeline import UsageError
            from gpa_core.genes.pipeline import main as integrate_main

            try:
                return integrate_main(args)
            except UsageError as exc:
                raise CLIError(str(exc)) from None
        commands = {"run": _run, "rival": _rival, "divergence": _divergence}
        result = commands[args.command](args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key != "config":
                print(f"{key}: {value}")
    return 0
