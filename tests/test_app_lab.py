"""AppTest of the divergence lab: a tiny computation (two values of L on 12 + 12 points, a small net)
runs in the background, the curve and the table fill in, and the network stays below the exact value;
bad inputs are one clear error."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from gpa_core.algorithm.exact import exact_divergence
from gpa_core.studies.batches import sample_pair

PAGE = Path(__file__).resolve().parent.parent / "pages" / "divergence_lab.py"


def _tiny(at: AppTest) -> None:
    at.number_input(key="lab_n").set_value(12)
    at.text_input(key="lab_Ls").set_value("0.5, 2")
    at.text_input(key="lab_hidden").set_value("8,8")
    at.number_input(key="lab_iterations").set_value(400)
    at.run()


def test_lab_computes_the_curve() -> None:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("Compute" in i.value for i in at.info)  # idle before the first start
    _tiny(at)
    at.button(key="lab_start").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        bars = at.get("progress")
        if bars and bars[0].proto.text.startswith("done"):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the lab's computation did not finish in time")
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert list(table["L"]) == [0.5, 2.0]
    P, Q = sample_pair("gaussian", "gaussian:mean=1.0", 12, 12, data_seed=0, dim=2)
    expected = [exact_divergence(P, Q, f="kl", L=L).value for L in (0.5, 2.0)]
    assert np.allclose(table["exact"], expected, rtol=1e-6)
    assert (table["network"] <= table["exact"] * (1 + 1e-3) + 1e-5).all()
    assert (table["network / exact (%)"] > 0).all()
    assert (table["exact"] <= table["L·W₁"] * (1 + 1e-6)).all()
    assert not at.warning  # the network never beat the supremum
    assert any("conservative" in c.value for c in at.caption)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lab_Ls", "1, fast", "numbers separated by commas"),
        ("lab_Ls", "0, 1", "positive finite"),
        ("lab_source", "nope", "Unknown dataset"),
        ("lab_hidden", "8,0", "hidden"),
    ],
)
def test_lab_refuses_bad_inputs(key: str, value: str, message: str) -> None:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    at.text_input(key=key).set_value(value)
    at.run()
    at.button(key="lab_start").click()
    at.run()
    errors = [e.value for e in at.error]
    assert errors and message in errors[0], errors


def test_lab_figure_and_table_take_partial_rows() -> None:
    """While computing, a row may lack its network value (or its exact value, where not certified)."""
    from gpa_core.plots.lab import TABLE_FORMATS, exact_vs_network_figure, lab_table, ratio_percent

    rows = [
        {"L": 0.1, "bound": 0.12, "exact": 0.11, "network": 0.105, "solver": "clarabel"},
        {"L": 1.0, "bound": 1.2, "exact": 0.74},
        {"L": 10.0, "bound": 12.0, "exact": None, "solver": "not certified"},
    ]
    fig = exact_vs_network_figure(rows)
    names = [t.name for t in fig.data]
    assert names[:3] == ["L·W₁ (eq. 1.3 bound)", "exact: all L-Lipschitz φ", "network estimate"]
    assert fig.layout.xaxis2.type == "log"
    ratio = ratio_percent(rows)
    assert ratio[0] == pytest.approx(100 * 0.105 / 0.11) and np.isnan(ratio[1:]).all()
    table = lab_table(rows)
    assert set(TABLE_FORMATS) <= set(table.columns) and list(table["solver"]) == [
        "clarabel",
        "",
        "not certified",
    ]
