"""Point clouds a run starts from: the seeded datasets, the paper's presets, and uploaded files
(:mod:`~gpa_core.data.points` for tables and images, :mod:`~gpa_core.data.file_kinds` for what a file's
bytes are)."""
