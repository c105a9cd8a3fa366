"""Apps for the processing-service tests: hooks that write files, set data, fail."""

from __future__ import annotations

from runner.apps import AppDef
from runner.states import JobState


class Hooked(AppDef):
    name = "hooked"
    command_template = "echo {word}"
    parameters = {"word": "hi", "pre": "ok", "post": "ok"}

    def preprocess(self) -> JobState | None:
        mode = self.params["pre"]
        if mode == "raise":
            raise RuntimeError(f"preprocess exploded for {self.params['word']}")
        if mode == "bad":
            return JobState.JOB_FINISHED  # not allowed after STAGED_IN
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "pre.txt").write_text(f"prepared {self.params['word']}")
        self.data["prepared"] = True
        return None

    def postprocess(self) -> JobState | None:
        if self.params["post"] == "fail":
            return JobState.FAILED
        self.data["post"] = (self.workdir / "pre.txt").read_text()
        return None

    def handle_error(self) -> JobState | None:
        self.data["errors_seen"] = self.data.get("errors_seen", 0) + 1
        return None

    def handle_timeout(self) -> JobState | None:
        return None


class Plain(AppDef):
    """No hooks: the server moves its jobs by itself; the service must leave them alone."""

    name = "plain"
    command_template = "true"
