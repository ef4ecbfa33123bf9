"""Tests for gpa_core.engine.runner: the background runner's lifecycle, live changes, resets, bounds,
failures."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpa_core import ConfigError, FlowConfig
from gpa_core.engine.runner import Runner
from gpa_core.engine.snapshot import HISTORY_FIELDS, FrameStore, HistoryStore, data_extent

# steps: more than any test can finish (the compiled path runs this tiny flow at ~20k steps/s)
SMALL = FlowConfig(hidden=(8, 8), steps=10_000_000, kl_form="dv", dt=0.2)


def _data(m: int = 40, n: int = 40, d: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.5, (m, d)), rng.normal(3, 0.5, (n, d))


def _runner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gpa-runner" and t.is_alive()]


def _wait(cond, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def make_runner():
    made: list[Runner] = []

    def make(*args, **kwargs) -> Runner:
        if not args:
            args = (*_data(), SMALL)
        r = Runner(*args, **kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()
    assert all(not r.alive for r in made)


def test_initial_snapshot_without_thread(make_runner) -> None:
    r = make_runner()
    s = r.snapshot()
    assert s.state == "ready" and s.n == 0 and not s.playing
    assert s.particles.shape == (1, 40, 2) and s.target.shape == (1, 40, 2)
    assert s.grid is not None and s.grid.phi.shape == (len(s.grid.ys), len(s.grid.xs))
    assert np.isfinite(s.grid.phi).all() and s.grid.u.shape == s.grid.ax.shape
    assert not s.particles.flags.writeable  # immutable
    assert not r.alive  # the worker starts lazily, on the first command


def test_lifecycle_play_pause_step_reset_stop(make_runner) -> None:
    before = len(_runner_threads())
    r = make_runner()
    r.play()
    assert r.alive and r.playing
    assert _wait(lambda: r.snapshot().n >= 5)
    s = r.snapshot()
    assert s.state == "playing" and s.steps_per_second > 0
    assert len(s.history) >= 1 and s.history.kinetic_energy.shape[1] == 1

    r.pause()
    s = r.wait_idle()
    assert not r.playing and s.state == "paused"
    n_paused = s.n
    time.sleep(0.3)
    assert r.snapshot().n == n_paused  # paused means paused

    r.step_once(3)
    s = r.wait_idle()
    assert s.n == n_paused + 3 and s.state == "paused"

    run_id = s.run_id
    r.reset()
    s = r.wait_idle()
    assert s.n == 0 and s.run_id != run_id and s.state == "ready" and "reset" in s.message

    r.stop()
    assert not r.alive and r.closed and r.snapshot().state == "stopped"
    assert len(_runner_threads()) == before
    with pytest.raises(RuntimeError, match="stopped"):
        r.play()
    r.stop()  # idempotent


def test_live_dt_change_keeps_particles(make_runner) -> None:
    r = make_runner()
    r.step_once(4)
    s = r.wait_idle()
    assert s.n == 4
    kind = r.update(SMALL.replace(dt=0.05, L=10.0, lr=5e-4, inner_steps=2))
    assert kind == "live"
    s2 = r.wait_idle()
    assert s2.run_id == s.run_id and s2.n == 4  # no reset
    np.testing.assert_array_equal(s2.particles, s.particles)
    assert s2.configs[0].dt == 0.05 and s2.configs[0].L == 10.0
    assert "live" in s2.message and "Δt" in s2.message
    r.step_once(1)
    s3 = r.wait_idle()
    assert s3.n == 5
    # the step used the new Δt: the time advanced by 0.05
    assert s3.t[0] == pytest.approx(4 * 0.2 + 0.05)
    assert r.update(s3.configs[0]) == "unchanged"


def test_non_live_change_resets_and_says_so(make_runner) -> None:
    r = make_runner()
    r.step_once(3)
    s = r.wait_idle()
    assert r.update(SMALL.replace(hidden=(16, 16))) == "reset"
    s2 = r.wait_idle()
    assert s2.n == 0 and s2.run_id != s.run_id
    assert "hidden" in s2.message and "reset" in s2.message
    assert r.update([SMALL, SMALL.replace(L=10.0)]) == "reset"
    s3 = r.wait_idle()
    assert s3.K == 2 and "number of members" in s3.message


def test_invalid_update_leaves_run_untouched(make_runner) -> None:
    r = make_runner()
    r.step_once(2)
    s = r.wait_idle()
    with pytest.raises(ConfigError):
        r.update([SMALL, SMALL.replace(hidden=(4,))])  # members must share the network shape
    with pytest.raises(ConfigError):
        r.replace_data(np.zeros((10, 3)), np.zeros((10, 2)))  # dimensions disagree
    s2 = r.wait_idle()
    assert s2.run_id == s.run_id and s2.n == 2


def test_wait_idle_waits_for_a_command_in_hand(make_runner) -> None:
    """The worker takes a command off the queue and turns busy under one lock: ``wait_idle`` must
    never see an empty queue and an idle worker while a step is still to be done (it did when the
    two were separate, whenever the interpreter switched threads between them)."""
    r = make_runner()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: open any window there is
    try:
        for i in range(1, 401):
            r.step_once(1)
            assert r.wait_idle().n == i
    finally:
        sys.setswitchinterval(interval)


def test_deterministic_reset(make_runner) -> None:
    r = make_runner()
    r.step_once(5)
    first = r.wait_idle()
    r.reset()
    r.wait_idle()
    r.step_once(5)
    second = r.wait_idle()
    assert second.run_id != first.run_id and second.n == first.n == 5
    np.testing.assert_array_equal(first.particles, second.particles)
    np.testing.assert_array_equal(first.history.kinetic_energy, second.history.kinetic_energy)


def test_bounded_history_and_frames(make_runner) -> None:
    r = make_runner(*_data(20, 20), SMALL.replace(hidden=(4,), inner_steps=1), max_history=16, max_frames=6)
    for _ in range(5):
        r.step_once(20)
    s = r.wait_idle(timeout=30)
    assert s.n == 100
    assert len(s.history) <= 17  # 16 kept rows + the latest
    assert s.history.step[0] == 0 and s.history.step[-1] == 99
    assert np.all(np.diff(s.history.step) > 0)
    frames = r.frames()
    assert 2 <= len(frames) <= 6 and frames[0].step == 0
    assert all(f.particles.shape == (20, 2) for f in frames)


@settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(4, 50),
    chunks=st.lists(st.integers(1, 40), min_size=1, max_size=30),
)
def test_history_store_bounded_and_evenly_spaced(capacity: int, chunks: list[int]) -> None:
    store = HistoryStore(K=2, capacity=capacity)
    start = 0
    for size in chunks:
        steps = np.arange(start, start + size)
        store.extend(steps, {f: np.column_stack([steps, -steps]).astype(float) for f in HISTORY_FIELDS})
        start += size
    data = store.data()
    assert len(store.step) <= capacity
    assert data.step[-1] == start - 1  # the latest value is always shown
    kept = store.step
    assert kept[0] == 0 and np.all(kept % store.stride == 0)
    assert np.all(np.diff(kept) == store.stride)  # evenly spaced
    np.testing.assert_array_equal(data.kinetic_energy[:, 0], data.step)


def test_frame_store_bounded() -> None:
    store = FrameStore(capacity=5)
    for n in range(0, 200, 3):
        store.offer(n, n * 0.1, np.zeros((4, 2)))
    assert 2 <= len(store.frames) <= 5
    steps = [f.step for f in store.frames]
    assert steps == sorted(steps) and steps[0] == 0


def test_failure_in_thread_becomes_status(make_runner, monkeypatch) -> None:
    r = make_runner()
    r.step_once(1)
    r.wait_idle()

    def boom(n: int = 1) -> int:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(r._run.flow, "step", boom)
    r.play()
    assert _wait(lambda: r.snapshot().state == "error")
    s = r.snapshot()
    assert not s.playing and "out of memory" in (s.error or "")
    assert "failed" in s.message
    assert _wait(lambda: not r.alive)  # the thread ended, and said why
    r.play()  # refused politely
    assert r.snapshot().state == "error" and not r.playing
    r.reset()  # a reset builds a fresh flow and clears the error
    s = r.wait_idle()
    assert s.state == "ready" and s.error is None


def test_generic_exception_becomes_status(make_runner, monkeypatch) -> None:
    r = make_runner()
    monkeypatch.setattr(r._run.flow, "particles", lambda: np.full((1, 40, 2), np.nan) / 0)

    def bad_particles():
        raise ValueError("non-finite values in the particles")

    monkeypatch.setattr(r._run.flow, "particles", bad_particles)
    r.step_once(1)
    assert _wait(lambda: r.snapshot().state == "error")
    assert "ValueError" in (r.snapshot().error or "")


def test_divergence_is_visible(make_runner) -> None:
    # An unregularized flow with an absurd step size blows up quickly: a status, not a crash.
    src, tgt = _data()
    cfg = SMALL.replace(L=float("inf"), dt=100.0, lr=0.5, f="kl", kl_form="dv", logsumexp=False)
    r = make_runner(src, tgt, cfg)
    r.play()
    assert _wait(lambda: r.snapshot().state in ("finished", "error"), timeout=30)
    s = r.snapshot()
    assert s.state == "finished" and s.status[0] == "diverged"
    assert s.diverged_at[0] is not None and s.reason[0]
    assert "diverged" in s.message and not r.playing


def test_idle_timeout_stops_thread(make_runner) -> None:
    r = make_runner(idle_timeout=0.5)
    r.play()
    assert r.alive
    # nobody polls: the worker pauses and exits on its own
    assert _wait(lambda: not r.alive, timeout=10)
    s = r.snapshot()
    assert not s.playing and "nobody looked" in s.message
    n = s.n
    r.step_once(1)  # the run is kept: the next command starts a new worker
    assert r.wait_idle().n == n + 1


def test_finished_run_stops_playing(make_runner) -> None:
    r = make_runner(*_data(), SMALL.replace(steps=6))
    r.play()
    assert _wait(lambda: r.snapshot().state == "finished")
    s = r.snapshot()
    assert s.n == 6 and not s.playing and all(s.finished)
    r.play()
    assert not r.playing and "finished" in r.snapshot().message
    assert r.update(SMALL.replace(steps=8)) == "live"  # more steps: playable again
    r.play()
    assert _wait(lambda: r.snapshot().n == 8 and r.snapshot().state == "finished")


def test_slow_speed_and_ensemble(make_runner) -> None:
    r = make_runner(*_data(), [SMALL, SMALL.replace(L=10.0, seed=3)])
    r.set_speed(2, frame_interval=0.05)
    r.play()
    assert _wait(lambda: r.snapshot().n >= 6)
    r.pause()
    s = r.wait_idle()
    assert s.n % 2 == 0  # whole frames of 2 steps
    assert s.particles.shape == (2, 40, 2) and s.history.kinetic_energy.shape[1] == 2
    assert len(s.status) == 2 and len(s.t) == 2
    with pytest.raises(ValueError, match="steps_per_frame"):
        r.set_speed(0)


def test_no_grid_in_3d_and_trails(make_runner) -> None:
    src, tgt = _data(d=3)
    r = make_runner(src, tgt, SMALL, trail_length=4, trail_particles=5)
    for _ in range(6):
        r.step_once(1)
    s = r.wait_idle()
    assert s.grid is None and s.d == 3
    assert s.trails is not None and s.trails.shape == (4, 5, 3)


def test_exports(make_runner) -> None:
    r = make_runner()
    r.step_once(3)
    s = r.wait_idle()
    lines = s.particles_csv().strip().splitlines()
    assert lines[0] == "x1,x2" and len(lines) == 41
    hist = s.history_csv().strip().splitlines()
    assert hist[0].startswith("step,member,time,kinetic_energy")
    assert len(hist) == 1 + len(s.history)
    assert set(s.history_arrays()) == {"step", *HISTORY_FIELDS}


def test_data_extent_ignores_far_outliers() -> None:
    rng = np.random.default_rng(0)
    bulk = rng.normal(0, 1, (500, 2))
    lo, hi = data_extent(np.vstack([bulk, [[1e6, 0.0]]]))
    assert hi[0] < 100 and lo[0] < -2
    lo, hi = data_extent(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert np.all(hi > lo)


def test_bad_arguments() -> None:
    src, tgt = _data()
    with pytest.raises(ValueError, match="idle_timeout"):
        Runner(src, tgt, SMALL, idle_timeout=0)
    with pytest.raises(ConfigError):
        Runner(src, tgt[:, :1], SMALL)
    assert not _runner_threads() or all(t.daemon for t in _runner_threads())


# ---------------------------------------------------------------------------------------------------
# The stop rule D ≤ ε (paper §4, (8.1)) and the generated particles' W₂
# ---------------------------------------------------------------------------------------------------


def _mixture_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = np.array([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])
    target = centres[rng.integers(0, 4, 60)] + rng.normal(0, 0.3, (60, 2))
    return rng.normal(0, 0.5, (60, 2)), target, rng.normal(0, 0.5, (30, 2))


def _expected_stop(d: np.ndarray, eps: float) -> int:
    """The step the rule stops at: the first D ≤ ε once D has fallen to STOP_ARMING of its peak."""
    from gpa_core.engine.flow import STOP_ARMING

    peak, armed = -np.inf, False
    for i, value in enumerate(d):
        if np.isfinite(value):
            peak = max(peak, float(value))
            armed = armed or (peak > 0 and value <= STOP_ARMING * peak)
        if armed and value <= eps:
            return i
    raise AssertionError("the rule never fires on this history")


def test_stop_rule_waits_for_the_climbing_estimate() -> None:
    """The first estimates come from a barely trained φ: small whatever the distance. An ε above them
    but below the peak must not stop the run on its way up, only once the estimate has come down."""
    from gpa_core.engine.flow import GPAFlow

    src, tgt, _ = _mixture_data()
    base = FlowConfig(hidden=(8, 8), steps=300, kl_form="dv", dt=0.5, engine="eager")
    free = GPAFlow(src, tgt, base)
    free.step(300)
    d = free.history.divergence[:, 0]
    peak_at = int(np.nanargmax(d))
    eps = 0.5 * float(np.nanmax(d))  # crossed on the way up, and again on the way down
    assert peak_at > 0 and (d[:peak_at] <= eps).any()
    flow = GPAFlow(src, tgt, base.replace(stop_divergence=eps))
    flow.step(300)
    assert flow.stopped_step[0] > peak_at and flow.stopped_step == [_expected_stop(d, eps)]


@pytest.mark.parametrize("engine", ["eager", "compiled"])
def test_stop_rule_stops_at_the_first_estimate_below_eps(engine: str) -> None:
    from gpa_core.engine.flow import GPAFlow

    src, tgt, gen = _mixture_data()
    base = FlowConfig(hidden=(8, 8), steps=400, kl_form="dv", dt=0.5, engine=engine)
    free = GPAFlow(src, tgt, base, generated=gen)
    free.step(400)
    d = free.history.divergence[:, 0]
    eps = float(np.quantile(d[np.isfinite(d)], 0.5))  # reached somewhere along the run
    first = _expected_stop(d, eps)
    flow = GPAFlow(src, tgt, base.replace(stop_divergence=eps), generated=gen)
    taken = flow.step(400)
    assert taken == first + 1 and flow.stopped_step == [first]
    assert flow.status(0) == "stopped" and flow.finished(0) and flow.step(10) == 0
    s = flow.summary()[0]
    assert s.steps == first and s.diverged_at is None and "≤ ε" in s.reason
    # the kept particles are those the estimate was computed at: the free run's after `first` steps
    again = GPAFlow(src, tgt, base, generated=gen)
    again.step(first)
    np.testing.assert_allclose(flow.particles(), again.particles(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(flow.generated(), again.generated(), rtol=0, atol=1e-5)
    assert float(flow.t[0]) == pytest.approx(first * 0.5)
    # a new ε (a live change) lets it go on
    flow.reconfigure(base.replace(stop_divergence=0.0))
    assert flow.status(0) == "running" and flow.step(5) == 5


def test_stop_rule_is_off_by_default_and_per_member() -> None:
    from gpa_core.engine.flow import GPAFlow

    src, tgt, _ = _mixture_data()
    base = FlowConfig(hidden=(8, 8), steps=200, kl_form="dv", dt=0.5, engine="eager")
    assert base.stop_divergence == 0.0
    flow = GPAFlow(src, tgt, [base, base.replace(stop_divergence=1e6)])
    assert flow.step(200) == 200
    assert [flow.status(k) for k in range(2)] == ["running", "stopped"]
    # any estimate is ≤ 1e6: member 1 stops as soon as its estimate has come down from its peak
    stop = _expected_stop(flow.history.divergence[:, 0], 1e6)  # member 0 ran the same steps
    assert flow.stopped_step == [-1, stop] and float(flow.t[1]) == pytest.approx(stop * 0.5)
    assert np.isnan(flow.history.divergence[stop + 1 :, 1]).all()  # it took no more steps
    with pytest.raises(ConfigError, match="stop_divergence"):
        FlowConfig(stop_divergence=-1.0)


def test_runner_reports_the_stop_rule(make_runner) -> None:
    src, tgt, _ = _mixture_data()
    r = make_runner(
        src, tgt, FlowConfig(hidden=(8, 8), steps=5000, kl_form="dv", dt=0.5, stop_divergence=1e6)
    )
    r.play()
    assert _wait(lambda: r.snapshot().state == "finished")
    snap = r.snapshot()
    assert snap.status == ("stopped",) and "D ≤ ε" in snap.message
    r.play()  # a stopped run does not start again by itself
    assert r.snapshot().state == "finished"


def test_generated_points_w2_is_tracked(make_runner) -> None:
    src, tgt, gen = _mixture_data()
    cfg = FlowConfig(hidden=(8, 8), steps=300, kl_form="dv", dt=0.5)
    from functools import partial

    from gpa_core.ot import wasserstein2

    w2 = partial(wasserstein2, max_points=400, seed=0)
    r = make_runner(src, tgt, cfg, generated=gen, distance=w2, distance_interval=0.0)
    first = r.snapshot()
    assert first.generated.shape == (1, 30, 2) and len(first.distances) == 1 and first.distances.step[0] == 0
    r.step_once(3)
    snap = r.wait_idle()
    assert snap.distances.step[-1] == 3  # a single-step command measures at once
    r.play()
    assert _wait(lambda: r.snapshot().state == "finished")
    s = r.snapshot().distances
    assert s.step[-1] == 300 and np.all(np.diff(s.step) > 0) and np.isfinite(s.generated).all()
    assert s.generated[-1] < 0.8 * s.generated[0]  # the learned fields carry fresh points to the target
    assert s.particles[-1] < 0.8 * s.particles[0]
    snap = r.snapshot()
    assert s.generated[-1] == pytest.approx(wasserstein2(snap.generated[0], snap.target[0], max_points=400))
    rows = snap.distances_csv().splitlines()
    assert rows[0] == "step,time,w2_generated,w2_particles" and len(rows) == len(s) + 1
    assert snap.generated_csv().splitlines()[0] == "x1,x2" and len(snap.generated_csv().splitlines()) == 31
    # without generated points, or without a distance: nothing measured
    plain = make_runner(src, tgt, cfg, distance=w2)
    assert plain.snapshot().distances is None and plain.snapshot().generated is None
    unmeasured = make_runner(src, tgt, cfg, generated=gen)
    assert unmeasured.snapshot().distances is None and unmeasured.snapshot().generated is not None


def test_distance_store_is_bounded() -> None:
    from gpa_core.engine.snapshot import DistanceStore

    store = DistanceStore(capacity=8)
    for n in range(100):
        store.offer(n, n * 0.5, 1.0 / (n + 1), 2.0)
    data = store.data()
    assert len(data) <= 9 and data.step[0] == 0 and data.step[-1] == 99
    assert np.all(np.diff(data.step) > 0)


PLAYING_RUNNER = """
import time
from gpa_core.config import FlowConfig
from gpa_core.data.datasets import sample_spec
from gpa_core.engine.runner import Runner

source = sample_spec("gaussian:mean=0,std=0.5", 2000, seed=0)
target = sample_spec("mixture", 2000, seed=1)
runner = Runner(source, target, FlowConfig(steps=10**6, engine="eager", hidden=(256, 256)), grid=False)
runner.play()
time.sleep(1.0)
print("leaving while it plays")
"""


def test_a_playing_runner_does_not_abort_the_interpreter_at_exit() -> None:
    """A program that ends while its runner plays (a closed notebook, a stopped server) exits cleanly:
    the runner is stopped at exit. Before, its daemon worker was torn down inside a Torch operation and
    the process aborted ("terminate called without an active exception", status 134, every try)."""
    done = subprocess.run(
        [sys.executable, "-c", PLAYING_RUNNER], cwd=Path(__file__).resolve().parent.parent,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "leaving while it plays" in done.stdout
