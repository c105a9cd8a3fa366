"""The benchmark engine behind ``tolu bench`` (see docs/performance.md)."""
