"""Point clouds a run starts from: the seeded datasets (:mod:`~gpa_core.data.datasets`), the paper's presets
(:mod:`~gpa_core.data.presets`) and uploaded files. :mod:`~gpa_core.data.points` is the entry point for
uploads (:func:`~gpa_core.data.points.read_points` and the names the pages use); behind it
:mod:`~gpa_core.data.sources` holds the limits, the error and the bytes of an upload,
:mod:`~gpa_core.data.tables` the text and NumPy table readers, :mod:`~gpa_core.data.images` the image reader,
:mod:`~gpa_core.data.checks` the notes and the checks before a run, and :mod:`~gpa_core.data.file_kinds`
what a file's bytes are."""
