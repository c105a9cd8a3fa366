"""Apps sync: make the server's apps of this site match ``SITE/apps/``."""

from __future__ import annotations

from runner.apps import load_apps
from runner.client import SyncResult
from runner.site.service import SiteContext

EXAMPLE_APP = """\
# An example app (see docs/apps.md). `tolu site start` registers every app in
# this folder with the server; a job of this app runs `echo Hello, <name>!`
# in its workdir (SITE/data/<workdir>/, output in job.out).
name: hello
description: Say hello
command_template: echo Hello, {name}!
parameters:
  name: world        # null would make the parameter required
resources:
  num_nodes: 1
  ranks_per_node: 1
"""

EXAMPLE_HOOKS = '''\
"""An app with hooks, run by the site's processing service (files starting
with "_" are not loaded: copy this one to a new name to use it).

A hook reads self.job, self.params and self.workdir, may change self.data
(saved into job.data), and returns None (the normal next state) or a JobState.
An exception fails the job, with its traceback in the job's Event.
"""

from runner.apps import AppDef
from runner.states import JobState


class Count(AppDef):
    name = "count"
    command_template = "wc -l {path}"
    parameters = {"path": "input.txt"}

    def preprocess(self):
        (self.workdir / self.params["path"]).write_text("one\\ntwo\\n")

    def postprocess(self):
        out = (self.workdir / "job.out").read_text()
        self.data["lines"] = int(out.split()[0])

    def handle_error(self):
        return JobState.FAILED  # no retries for this app
'''


def sync_apps(ctx: SiteContext) -> SyncResult:
    """Load ``SITE/apps`` (errors name the file) and create/update the apps on the server."""
    apps = load_apps(ctx.apps_dir)
    return ctx.client.apps.sync(ctx.site_id, [a.to_create(ctx.site_id) for a in apps])
