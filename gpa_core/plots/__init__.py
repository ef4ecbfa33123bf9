"""Plotly figure builders: pure functions of results (no Streamlit), testable without a browser.
:mod:`~gpa_core.plots.flow` draws a live run, :mod:`~gpa_core.plots.studies` the batched studies,
:mod:`~gpa_core.plots.latent` the latent-space page."""
