"""The pipeline's steps, one module each; ``harness.pipeline.pipeline`` puts them in order."""
