"""The latent page's downloads open in pandas and anndata: the integrated source matrix (genes ×
samples, CSV.gz) and the source and target as one .h5ad, with the values the integration produced."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from gpa_core.genes.encoder import PCAEncoder
from gpa_core.genes.latent import integrate
from gpa_core.genes.study import make_synthetic_studies
from ui import latent as latent_ui


@pytest.fixture(scope="module")
def integrated():
    studies = make_synthetic_studies(
        n_genes=300, n_source=30, n_target=32, source_labels=(18, 12), target_labels=(10, 22), seed=0
    )
    source, target = studies.studies
    encoder = PCAEncoder(5).fit(source.expression, target.expression)
    return source, target, integrate(source, target, method="mean_std", encoder=encoder)


def test_matrix_download_is_genes_by_samples(integrated) -> None:
    source, _, res = integrated
    frame = pd.read_csv(io.BytesIO(latent_ui.integrated_matrix(source, res)), compression="gzip", index_col=0)
    assert frame.shape == (source.n_genes, source.n_samples) and frame.index.name == "gene"
    assert list(frame.columns) == [str(s) for s in source.sample_ids]
    # written as float32 text: agrees with the float64 result to float32's ~1e-7 relative rounding
    np.testing.assert_allclose(frame.to_numpy().T, res.source_integrated, rtol=1e-6, atol=1e-5)


def test_h5ad_download_opens_in_anndata(integrated, tmp_path) -> None:
    anndata = pytest.importorskip("anndata")
    source, target, res = integrated
    data = latent_ui.integrated_h5ad(source, target, res, "mean_std")
    assert data is not None
    file = tmp_path / "integrated.h5ad"
    file.write_bytes(data)
    adata = anndata.read_h5ad(file)
    assert adata.shape == (source.n_samples + target.n_samples, source.n_genes)
    counts = adata.obs["study"].value_counts().to_dict()
    assert counts == {"target": target.n_samples, "source": source.n_samples}
    assert set(adata.obs["method"]) == {"mean_std", "none"}
    np.testing.assert_allclose(adata.X[: source.n_samples], res.source_integrated, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(adata.X[source.n_samples :], target.expression, rtol=1e-6, atol=1e-5)
