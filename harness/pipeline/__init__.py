"""The integration pipeline: the whole system, end to end, as a user would run it.

``./ci/integration`` / ``tolu ci integration`` runs twelve steps, each reported as it runs
with its duration:

 1. build the wheel and install it into a fresh virtual environment;
 2. start the server (container, process, or an existing URL) and wait for /health;
 3. register and log in a user (``tolu register``, ``tolu login`` from the fresh venv);
 4. create a site (``tolu site init``) with the scheduler (local, or Slurm);
 5. activate the transfer endpoints (local backend; Globus only where configured) and tell
    the server the site's locations (it refuses jobs that name another);
 6. populate apps and a realistic mix of jobs (single- and multi-rank MPI, a DAG, packed
    tasks, a job meant to fail, jobs with stage-in and stage-out);
 7. configure the queue maintainer (depth 1) and start the site agent;
 8. monitor job and batch-job states and the logs until every job is final or a deadline;
 9. report failures: ERROR log lines, unexpected FAILED jobs, stuck jobs, failed batch jobs,
    launchers lost mid-run;
10. collect artifacts into ``artifacts/<run-id>/`` (logs, state histories, outputs,
    throughput, report.json + report.html);
11. check that the staged-out files exist at their destinations with the right content;
12. publish the run's report to the server it tested, as its site, and read it back
    (docs/results.md); then the server stops.

Steps 1-8 stop the run at the first failure; 9, 10 and 12 always run once a site exists (so a
failed run still leaves its evidence, and is published), 11 runs when monitoring finished.
Faults can be planted on purpose (``--fault``) to prove the pipeline catches them; see
docs/ci.md.

Modules: ``pipeline`` (the order of the steps and what always runs), ``steps/`` (one module
per step), ``context`` (what the steps of one run share), ``faults`` (the planted faults),
``logs`` (ERROR lines as they appear), ``history`` (state histories saved from the server),
``cleanup`` (stopping what the run started), ``report`` (report.json, report.html),
``cli`` (``tolu ci``).
"""
