"""Published runs: the documents the server keeps (docs/results.md).

``schemas/`` holds the JSON Schemas of the three documents a run may publish, copied
from where the tooling writes them (the runner never imports the harness;
suites/server/test_runs.py fails when a copy differs from its original):

- ``report.schema.json``: a harness run's report.json (harness/report.schema.json);
- ``bench.schema.json``: a ``tolu bench`` bench.json (harness/bench/bench.schema.json);
- ``pipeline.schema.json``: the integration pipeline's report.json
  (harness/pipeline/report.schema.json).

``documents`` checks a document against its schema; ``summaries`` takes out of it what
lists, the matrix and the trends read.
"""
