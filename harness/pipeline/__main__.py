"""``python -m harness.pipeline [options]`` = ``tolu ci integration [options]`` (what
``./ci/integration`` runs)."""

from harness.pipeline.cli import integration

integration(prog_name="ci/integration")
