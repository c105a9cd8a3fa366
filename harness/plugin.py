"""pytest entry point of the tolu harness (being built)."""
