"""CI helpers: the end-to-end integration pipeline (``tolu ci integration``, ``./ci/integration``)."""
