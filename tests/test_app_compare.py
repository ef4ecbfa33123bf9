"""AppTest runs of the compare, stability-map and heavy-tail pages with tiny settings: each page starts its
background computation, the live views fill in, and nothing raises."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"


def _poll(at: AppTest, done: callable, timeout: float = 90.0) -> None:  # type: ignore[valid-type]
    """Rerun the app until ``done(at)`` or the timeout (the work runs in a background thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return
        time.sleep(0.3)
    raise AssertionError("the background computation did not finish in time")


def _progress_text(at: AppTest) -> str:
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def _plotly(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


def test_compare_page_runs_a_preset() -> None:
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60)
    at.run()
    assert not at.exception
    editor = at.dataframe[0].value  # the runs table of the Fig. 2–3 preset
    assert list(editor["L"]) == ["1", "10", "100", "inf"]
    at.number_input(key="cmp_M").set_value(24)
    at.number_input(key="cmp_N").set_value(24)
    at.number_input(key="cmp_T").set_value(3.0)
    at.text_input(key="cmp_hidden").set_value("8,8")
    at.number_input(key="cmp_metric_every").set_value(2)
    at.run()
    at.button(key="cmp_start").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    _poll(at, lambda a: any("state: **finished**" in c.value for c in a.caption))
    table = at.dataframe[1].value
    assert list(table["run"]) == ["L = 1", "L = 10", "L = 100", "L = ∞"]
    assert set(table["status"]) <= {"reached T", "converged", "diverged"}
    assert (table["steps/s"] > 0).all()
    assert (table["steps"] == 6).all()  # T = 3 with Δt = 0.5
    assert table["W₂ to target"].notna().all()
    charts = _plotly(at)
    assert len(charts) == 4  # particles, kinetic energy, divergence, W₂
    assert at.selectbox(key="cmp_open_choice").options == ["L = 1", "L = 10", "L = 100", "L = ∞"]


def test_compare_page_preset_switch_and_bad_row() -> None:
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60)
    at.run()
    at.selectbox(key="cmp_preset").set_value("fig4-heavy-tails")
    at.run()
    assert at.text_input(key="cmp_target").value.startswith("student_t:nu=0.5")
    assert list(at.dataframe[0].value["run"]) == ["KL", "α = 2", "α = 10"]
    at.text_input(key="cmp_hidden").set_value("8,0")  # a zero-width layer is not allowed
    at.run()
    at.button(key="cmp_start").click()
    at.run()
    errors = [e.value for e in at.error]
    assert errors and "hidden layer widths" in errors[0]
    # a bad value in the runs table names its row
    runs = at.session_state["cmp_runs"].copy()
    runs.loc[1, "L"] = "fast"
    at.session_state["cmp_runs"] = runs
    at.session_state["cmp_editor_version"] = 99
    at.text_input(key="cmp_hidden").set_value("8 8")
    at.run()
    at.button(key="cmp_start").click()
    at.run()
    errors = [e.value for e in at.error]
    assert errors and "row 2 (α = 2)" in errors[0] and "L must be a positive number" in errors[0]


def test_compare_page_query_parameters() -> None:
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60)
    at.query_params["preset"] = "fig4-heavy-tails"
    at.query_params["T"] = "7"
    at.run()
    assert at.selectbox(key="cmp_preset").value == "fig4-heavy-tails"
    assert at.number_input(key="cmp_T").value == 7.0


def test_stability_page_tiny_grid() -> None:
    at = AppTest.from_file(str(PAGES / "stability.py"), default_timeout=60)
    at.run()
    assert not at.exception
    for key, value in [
        ("stab_M", 20),
        ("stab_N", 20),
        ("stab_nL", 2),
        ("stab_ndt", 2),
        ("stab_T", 1.0),
        ("stab_dt_lo", 0.25),
        ("stab_dt_hi", 0.5),
    ]:
        at.number_input(key=key).set_value(value)
    at.text_input(key="stab_hidden").set_value("8 8")  # spaces, as people type it (it read 88 once)
    at.run()
    assert any("4 runs, 12 particle steps" in c.value for c in at.caption)
    at.button(key="stab_start").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    _poll(at, lambda a: _progress_text(a).startswith("done"))
    assert "4/4 cells" in _progress_text(at)
    heat = _plotly(at)[0]
    assert heat.proto.spec  # the heat map was drawn
    cells = at.selectbox(key="stab_cell_choice").options
    assert len(cells) == 4 and cells[0].startswith("0: L = 0.1")
    assert any(m.value.startswith("**Cell 0") for m in at.markdown)
    assert any("outcome: **" in m.value for m in at.markdown)


def test_stability_page_adds_an_unregularized_row() -> None:
    at = AppTest.from_file(str(PAGES / "stability.py"), default_timeout=60)
    at.run()
    at.checkbox(key="stab_L_inf").check()
    at.run()
    at.button(key="stab_start").click()
    at.run()
    errors = [e.value for e in at.error]
    assert errors and "at most 7 finite L" in errors[-1]  # 8 finite L values + ∞ is one row too many
    for key, value in [("stab_M", 20), ("stab_N", 20), ("stab_nL", 1), ("stab_ndt", 1), ("stab_T", 0.5)]:
        at.number_input(key=key).set_value(value)
    at.text_input(key="stab_hidden").set_value("8,8")
    at.run()
    assert any(c.value.startswith("2 runs, ") for c in at.caption)  # the L = ∞ row counts
    at.button(key="stab_start").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _poll(at, lambda a: _progress_text(a).startswith("done"))
    cells = at.selectbox(key="stab_cell_choice").options
    assert len(cells) == 2 and "L = ∞" in cells[1], cells
    # a second map in the same session replaces the first (its job is cancelled, nothing crashes)
    at.checkbox(key="stab_L_inf").uncheck()
    at.run()
    at.button(key="stab_start").click()
    at.run()
    assert not at.exception and not at.error
    _poll(at, lambda a: _progress_text(a).startswith("done"))
    assert len(at.selectbox(key="stab_cell_choice").options) == 1


def test_stability_page_rejects_bad_grid() -> None:
    at = AppTest.from_file(str(PAGES / "stability.py"), default_timeout=60)
    at.run()
    at.number_input(key="stab_L_lo").set_value(50.0)
    at.number_input(key="stab_L_hi").set_value(5.0)
    at.run()
    at.button(key="stab_start").click()
    at.run()
    errors = [e.value for e in at.error]
    assert errors and "below the lower end" in errors[-1]


@pytest.mark.parametrize("numerics", [["paper", "authors"]])
def test_heavy_tails_page_tiny_sweep(numerics: list[str]) -> None:
    at = AppTest.from_file(str(PAGES / "heavy_tails.py"), default_timeout=60)
    at.run()
    assert not at.exception
    paper = at.dataframe[0].value  # before any run: the paper's Table 1
    assert list(paper["paper: KL"])[2:4] == ["diverged at t = 0"] * 2
    at.multiselect(key="ht_cases").set_value([4, 8])
    at.multiselect(key="ht_numerics").set_value(numerics)
    for key, value in [("ht_seeds", 2), ("ht_T", 2.0), ("ht_MN", 16)]:
        at.number_input(key=key).set_value(value)
    at.number_input(key="ht_alpha").set_value(10.0)
    at.text_input(key="ht_hidden").set_value(" 8 ")
    at.run()
    assert any("24 runs × 4 steps" in c.value for c in at.caption)
    at.button(key="ht_start").click()
    at.run()
    _poll(at, lambda a: _progress_text(a).startswith("done"))
    table = at.dataframe[0].value
    assert len(table) == 2 * 3 * 2  # cases × (KL, α = 2, α = 10) × numerics
    assert set(table["f"]) == {"KL", "α = 2", "α = 10"}
    assert (table["done"] == "2/2").all()
    assert table["paper (one run)"].iloc[0] == "diverged at t = 0"
    details = at.dataframe[1].value  # the seeds of the first row
    assert list(details["seed"]) == [0, 1]
    assert (details["exp limit"].round(1) == 88.7).all()
    assert len(_plotly(at)) == 2  # overflow gauge and divergence


def _tiny(at: AppTest, T: float = 5.0) -> None:
    at.number_input(key="cmp_M").set_value(30)
    at.number_input(key="cmp_N").set_value(30)
    at.number_input(key="cmp_T").set_value(T)
    at.text_input(key="cmp_hidden").set_value("8,8")
    at.number_input(key="cmp_metric_every").set_value(2)
    at.run()


def _finished(at: AppTest) -> bool:
    return any("state: **finished**" in c.value for c in at.caption)


def test_compare_page_runs_gpa_beside_the_rival_flows() -> None:
    """The far-target preset: GPA at L = 1 and ∞ beside the MMD (narrow and median Gaussian, energy)
    and Sinkhorn flows, all from the same particles with the same Δt; the narrow kernel's MMD flow
    stalls far from the target while the Sinkhorn flow gets there."""
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60)
    at.run()
    at.selectbox(key="cmp_preset").set_value("rivals-far-target")
    at.run()
    runs = at.dataframe[0].value
    assert list(runs["flow"]) == [
        "GPA",
        "GPA",
        "MMD (Gaussian)",
        "MMD (Gaussian)",
        "MMD (energy)",
        "Sinkhorn",
    ]
    assert runs["width"].iloc[2] == 0.5 and runs["width"].iloc[3:].isna().all()  # empty: from the data
    _tiny(at, T=20.0)
    at.button(key="cmp_start").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    _poll(at, _finished)
    table = at.dataframe[1].value
    assert list(table["flow"]) == ["GPA", "GPA", "MMD", "MMD", "MMD", "Sinkhorn"]
    assert list(table["objective"]) == ["D_f^Γ", "D_f^Γ", "½MMD²", "½MMD²", "½MMD²", "S_ε"]
    assert (table["steps"] == 40).all()  # T = 20 with Δt = 0.5, every flow
    assert table["W₂ to target"].notna().all() and (table["steps/s"] > 0).all()
    narrow, sinkhorn = table.iloc[2], table.iloc[5]
    assert narrow["status"] == "stalled" and "does not reach the target" in narrow["why"]
    assert sinkhorn["W₂ to target"] < 0.1 * narrow["W₂ to target"]
    charts = _plotly(at)
    assert len(charts) == 4  # particles (6 panels), kinetic energy, objectives, W₂
    assert at.selectbox(key="cmp_open_choice").options == ["GPA L = 1", "GPA L = ∞"]  # GPA runs only


def test_compare_page_adds_the_rival_flows_and_refuses_a_bad_width() -> None:
    """ "Add the rival flows" appends the three rival flows to the Fig. 2–3 L sweep (which has L = ∞
    already) with its Δt; a negative width names its row; the edited comparison runs."""
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60)
    at.run()
    at.button(key="cmp_add_rivals").click()
    at.run()
    runs = at.session_state["cmp_runs"]
    assert list(runs["run"]) == [
        "L = 1",
        "L = 10",
        "L = 100",
        "L = ∞",
        "MMD (Gaussian)",
        "MMD (energy)",
        "Sinkhorn",
    ]
    assert (runs["Δt"] == 0.5).all()
    assert list(at.dataframe[0].value["flow"])[-3:] == ["MMD (Gaussian)", "MMD (energy)", "Sinkhorn"]
    bad = runs.copy()
    bad.loc[6, "width"] = -1.0
    at.session_state["cmp_runs"] = bad
    at.session_state["cmp_editor_version"] = 77
    _tiny(at, T=2.0)
    at.button(key="cmp_start").click()
    at.run()
    errors = [e.value for e in at.error]
    assert errors and "row 7 (Sinkhorn)" in errors[0] and "width" in errors[0]
    at.session_state["cmp_runs"] = runs
    at.session_state["cmp_editor_version"] = 78
    at.run()
    at.button(key="cmp_start").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    _poll(at, _finished)
    assert len(at.dataframe[1].value) == 7


def test_compare_page_starts_a_lessons_request() -> None:
    """The Lessons page leaves {"preset": id} under compare_request: the page loads that preset and
    starts it without a press of Start."""
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60)
    at.session_state["compare_request"] = {"preset": "rivals-four-wells"}
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="cmp_preset").value == "rivals-four-wells"
    assert "compare_request" not in at.session_state
    assert len(at.dataframe) == 2  # the runs table and the live outcome table of the started job
    assert list(at.dataframe[1].value["flow"]) == ["GPA", "GPA", "MMD", "MMD", "Sinkhorn"]
    captions = [c.value for c in at.caption]
    assert any(c.startswith("state: **") for c in captions), captions  # the live view of a started job
    at.button(key="cmp_pause").click()
    at.run()
    assert not at.exception
    # an unknown preset is said, and nothing starts
    other = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60)
    other.session_state["compare_request"] = {"preset": "no-such-preset"}
    other.run()
    assert any("no-such-preset" in e.value for e in other.error)
