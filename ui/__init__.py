"""What the Streamlit pages share: session state, the live-job scaffolding, upload glue and the
playground's URL. Numerical work stays in :mod:`gpa_core`."""
