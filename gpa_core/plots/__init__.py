"""Plotly figure builders: pure functions of results (no Streamlit), testable without a browser.
:mod:`~gpa_core.plots.flow` draws a live run (and :mod:`~gpa_core.plots.readout` says in words what its
numbers mean), :mod:`~gpa_core.plots.studies` the batched studies and the compare page,
:mod:`~gpa_core.plots.latent` the latent-space page, :mod:`~gpa_core.plots.lab` the divergence lab."""
