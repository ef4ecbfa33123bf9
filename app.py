"""GPA Explorer: Lipschitz-regularized gradient flows and the generative particle algorithm.

Run with ``streamlit run app.py``. Pages are listed once, in ``PAGES``; a page whose file does not
exist yet is left out of the navigation, so the app runs while pages are being written.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from gpa_core.engine import kernel
from gpa_core.genes.views import warm_up_umap_in_background

ROOT = Path(__file__).resolve().parent

#: (file, title, icon, default) — add a page by adding a line.
PAGES: tuple[tuple[str, str, str, bool], ...] = (
    ("pages/playground.py", "Particle flow", ":material/scatter_plot:", True),
    ("pages/lessons.py", "Lessons", ":material/school:", False),
    ("pages/compare.py", "Compare runs", ":material/compare:", False),
    ("pages/stability.py", "Stability map", ":material/grid_on:", False),
    ("pages/heavy_tails.py", "Heavy tails", ":material/ssid_chart:", False),
    ("pages/latent_space.py", "Latent space (genes)", ":material/genetics:", False),
    ("pages/divergence_lab.py", "Divergence lab", ":material/functions:", False),
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
    # then umap-learn's numba kernels (the latent page's views), so that page's first UMAP does not wait
    warm_up_umap_in_background(wait_for=kernel.ready)
    st.navigation(available_pages()).run()


if __name__ == "__main__":  # `streamlit run app.py` runs this file as __main__; `import app` does not
    main()
