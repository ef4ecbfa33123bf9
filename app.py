"""GPA Explorer: Lipschitz-regularized gradient flows and the generative particle algorithm.

Run with ``streamlit run app.py``. Pages are listed once, in ``PAGES``; a page whose file does not
exist yet is left out of the navigation, so the app runs while pages are being written.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from gpa_core.engine import kernel

ROOT = Path(__file__).resolve().parent

#: (file, title, icon, default) — add a page by adding a line.
PAGES: tuple[tuple[str, str, str, bool], ...] = (
    ("pages/playground.py", "Particle flow", ":material/scatter_plot:", True),
    ("pages/compare.py", "Compare runs", ":material/compare:", False),
    ("pages/stability.py", "Stability map", ":material/grid_on:", False),
    ("pages/heavy_tails.py", "Heavy tails", ":material/ssid_chart:", False),
    ("pages/latent_space.py", "Latent space (genes)", ":material/genetics:", False),
)


def available_pages() -> list[st.Page]:
    """The pages whose files exist, the playground first (it opens by default)."""
    return [
        st.Page(ROOT / path, title=title, icon=icon, default=default)
        for path, title, icon, default in PAGES
        if (ROOT / path).exists()
    ]


def main() -> None:
    # a local image: a Material-symbol page icon would make the browser fetch it from Google's servers
    icon = str(ROOT / "assets" / "images" / "gpa.png")
    st.set_page_config(page_title="GPA Explorer", page_icon=icon, layout="wide")
    # compile (first time on a machine) or load the compiled GPA kernel in the background; runs
    # started before it is ready go eagerly, later ones use it (each run says which it used)
    kernel.ensure_compiled(block=False)
    st.navigation(available_pages()).run()


if __name__ == "__main__":  # `streamlit run app.py` runs this file as __main__; `import app` does not
    main()
