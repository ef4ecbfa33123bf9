"""Gene-expression studies and their integration in a latent space (paper §9).

- :mod:`~gpa_core.genes.study` — the :class:`Study` data class, checks, alignment, synthetic studies;
- readers: :mod:`~gpa_core.genes.readers` (entry points), :mod:`~gpa_core.genes.text` (capped bytes,
  gzip, encodings), :mod:`~gpa_core.genes.table` (the table parser), :mod:`~gpa_core.genes.geo` (GEO
  series matrices), :mod:`~gpa_core.genes.batches` (sample sheets; one combined file split by its batch
  column), :mod:`~gpa_core.genes.scale` (linear-scale detection and the log2 transforms);
- :mod:`~gpa_core.genes.encoder` (standardization + PCA), :mod:`~gpa_core.genes.latent` (latent GPA and
  the baselines), :mod:`~gpa_core.genes.combat` (ComBat), :mod:`~gpa_core.genes.scores` (integration
  scores), :mod:`~gpa_core.genes.views` (UMAP and PCA views), :mod:`~gpa_core.genes.pipeline` (the
  page's pipeline without the page: ``python -m gpa_core integrate``).
"""
