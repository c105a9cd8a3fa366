"""What the client hands back in a notebook: job lists and tidy tables that show
themselves as HTML tables (failures red, with their reason; no pickled blobs) and turn
into pandas DataFrames (``to_pandas()``, the ``[notebook]`` extra)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from runner.extras import require_extra
from runner.html import rows_table
from runner.models import Job
from runner.states import JobState

if TYPE_CHECKING:
    import pandas

    from runner.client.failures import Failure
    from runner.client.jobs import JobManager

#: rows an HTML table shows before it says how many more there are.
HTML_ROWS = 50


def pandas_module() -> Any:
    """``pandas``, or MissingExtra naming the ``[notebook]`` extra."""
    try:
        import pandas
    except ImportError:
        require_extra("notebook", "to_pandas()")
        raise
    return pandas


class Table:
    """A tidy table: named columns, one row per observation (analytics helpers answer these)."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str = "") -> None:
        self.columns = tuple(columns)
        self.rows = [tuple(r) for r in rows]
        self.title = title

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Any:
        return iter(self.records())

    def __repr__(self) -> str:
        return f"<Table {self.title!r}: {len(self.rows)} rows x {', '.join(self.columns)}>"

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts (column -> value)."""
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def to_pandas(self) -> pandas.DataFrame:
        frame: pandas.DataFrame = pandas_module().DataFrame.from_records(
            self.rows, columns=list(self.columns)
        )
        return frame

    def _repr_html_(self) -> str:
        more = len(self.rows) - HTML_ROWS
        return rows_table(
            self.columns,
            [[_cell(v) for v in r] for r in self.rows[:HTML_ROWS]],
            title=self.title,
            footer=f"({HTML_ROWS} of {len(self.rows)} rows shown; to_pandas() has all)" if more > 0 else "",
        )


class JobList(list[Job]):
    """A ``list[Job]`` that shows itself as a table in a notebook (failed jobs red, with
    why) and converts to a DataFrame; what ``client.jobs.filter()`` and ``wait()`` return."""

    def __init__(self, jobs: Iterable[Job] = (), manager: JobManager | None = None) -> None:
        super().__init__(jobs)
        self._manager = manager

    def by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (states with none left out)."""
        return dict(Counter(j.state for j in self))

    def failures(self) -> dict[int, Failure]:
        """job id -> why it did not finish, for the FAILED and KILLED ones (asks the server)."""
        if self._manager is None:
            return {}
        return self._manager.explain(self)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per job: the job's fields (without serialized arguments), tags and
        parameters as dicts, times as timestamps."""
        rows = [j.model_dump(exclude={"serialized_args"}) for j in self]
        pd = pandas_module()
        frame: pandas.DataFrame = pd.DataFrame.from_records(
            rows, columns=[f for f in Job.model_fields if f != "serialized_args"]
        )
        frame["state"] = [j.state.value for j in self]  # plain text, not the enum
        return frame

    def _repr_html_(self) -> str:
        shown = self[:HTML_ROWS]
        reasons = {i: f.reason for i, f in self.failures().items()} if any(_bad(j) for j in shown) else {}
        counts = ", ".join(f"{s.value} {n}" for s, n in sorted(self.by_state().items()))
        footer = f"{len(self)} jobs: {counts}" if self else "no jobs"
        if len(self) > HTML_ROWS:
            footer += f" ({HTML_ROWS} shown; to_pandas() has all)"
        return rows_table(
            ("id", "app", "state", "parameters", "tags", "nodes", "updated", "reason"),
            [
                (
                    j.id,
                    j.app_id,
                    j.state.value,
                    _cell(j.parameters),
                    _cell(j.tags),
                    j.num_nodes,
                    j.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
                    reasons.get(j.id, ""),
                )
                for j in shown
            ],
            failed=[_bad(j) for j in shown],
            footer=footer,
        )


def _bad(job: Job) -> bool:
    return job.state in (JobState.FAILED, JobState.KILLED)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str) if value else ""
    return value
