"""App definitions: loading YAML/Python apps, shell-free argv rendering, python-function apps."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.apps import (
    AppDef,
    AppDefinitionError,
    MissingParameter,
    PythonApp,
    call_python,
    deserialize,
    load_apps,
    merge_parameters,
    placeholders,
    render_argv,
    run_hook,
    serialize_args,
)
from runner.models import AppKind, Job
from runner.states import JobState

TEMPLATES = [
    "echo {msg}",
    "prog --in={src} --out {dst} -v",
    'sh -c "echo {msg}"',
    "tool '{a} and {b}' {c}x{c} --flag",
    "run --n={n:05d} lit{{eral}}",
]

# Arbitrary text, including quotes, spaces, ;, $(...), newlines, braces and NULs stripped.
values = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)


@pytest.mark.parametrize("template", TEMPLATES)
@given(a=values, b=values, c=values, msg=values)
def test_render_argv_values_never_change_the_argv_shape(
    template: str, a: str, b: str, c: str, msg: str
) -> None:
    params = {"a": a, "b": b, "c": c, "msg": msg, "src": a, "dst": b, "n": 7}
    argv = render_argv(template, params)
    tokens = shlex.split(template)
    assert len(argv) == len(tokens)
    for token, arg in zip(tokens, argv, strict=True):
        if "{" not in token:
            assert arg == token
    # Every value appears literally inside the argument of its placeholder.
    if template == "echo {msg}":
        assert argv == ["echo", msg]
    if template == 'sh -c "echo {msg}"':
        assert argv == ["sh", "-c", f"echo {msg}"]


def test_render_argv_format_spec_and_literal_braces() -> None:
    assert render_argv("run --n={n:05d} lit{{eral}}", {"n": 7}) == ["run", "--n=00007", "lit{eral}"]


def test_render_argv_without_placeholders_gives_a_fresh_list_each_time() -> None:
    """A template without placeholders is compiled once; each job still gets its own argv."""
    first = render_argv("echo 'a b' lit{{eral}}", {"unused": 1})
    assert first == ["echo", "a b", "lit{eral}"]
    first.append("changed")
    assert render_argv("echo 'a b' lit{{eral}}", {}) == ["echo", "a b", "lit{eral}"]


def test_render_argv_missing_parameter_names_it() -> None:
    with pytest.raises(MissingParameter, match="'dst'"):
        render_argv("cp {src} {dst}", {"src": "a"}, app="copy")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("echo {a.b}", "plain parameter name"),
        ("echo {0}", "plain parameter name"),
        ("echo {a!r}", "conversions"),
        ("echo 'unclosed", "closing quotation"),
        ("echo {a", "braces"),
    ],
)
def test_bad_templates_are_rejected(template: str, problem: str) -> None:
    with pytest.raises(AppDefinitionError, match=problem):
        render_argv(template, {"a": 1})


def test_merge_parameters_defaults_and_required() -> None:
    assert merge_parameters({"a": 1, "b": None}, {"b": 2}) == {"a": 1, "b": 2}
    assert merge_parameters({"a": 1}, {"a": 5, "extra": "x"}) == {"a": 5, "extra": "x"}
    with pytest.raises(MissingParameter, match="app 'x': missing required parameter b"):
        merge_parameters({"a": 1, "b": None}, {}, app="x")
    assert placeholders("cp {src} {dst} {src}") == ["src", "dst"]


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(textwrap.dedent(text))
    return path


def test_load_yaml_and_python_apps(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "hello.yml",
        """\
        name: hello
        description: say hello
        command_template: echo hello {name} {count}
        parameters: {name: world}
        resources: {num_nodes: 2, ranks_per_node: 4}
        environment: {GREETING: hi}
    """,
    )
    _write(
        tmp_path,
        "more.yaml",
        """\
        apps:
          - {name: one, command_template: "true"}
          - {name: two, command_template: "false"}
    """,
    )
    _write(
        tmp_path,
        "sim.py",
        """\
        from runner.apps import AppDef, python_app
        from runner.states import JobState

        class Simulate(AppDef):
            '''Run the simulation.'''
            name = "simulate"
            command_template = "sim --steps {steps}"
            parameters = {"steps": 10}

            def postprocess(self):
                return None if self.params["steps"] > 0 else JobState.FAILED

        def _helper(x):
            return x + 1

        @python_app(resources={"node_packing_count": 4})
        def add_one(x, scale=1):
            '''Add one.'''
            return _helper(x) * scale
    """,
    )
    _write(tmp_path, "_private.py", "raise RuntimeError('never imported')\n")
    _write(tmp_path, "README.txt", "ignored\n")
    apps = {a.name: a for a in load_apps(tmp_path)}
    assert sorted(apps) == ["add_one", "hello", "one", "simulate", "two"]

    hello = apps["hello"].to_create(7)
    assert hello.site_id == 7 and hello.kind == AppKind.SHELL
    # {count} is used but not declared: it becomes a required parameter.
    assert hello.parameters == {"name": "world", "count": None}
    assert hello.default_resources.num_nodes == 2 and hello.environment == {"GREETING": "hi"}
    assert hello.hooks == []

    sim = apps["simulate"].to_create(7)
    assert sim.hooks == ["postprocess"] and sim.description == "Run the simulation."

    py = apps["add_one"]
    assert isinstance(py, PythonApp)
    created = py.to_create(7)
    assert created.kind == AppKind.PYTHON and created.serialized_function and created.command_template is None
    assert created.default_resources.node_packing_count == 4
    assert call_python(created.serialized_function, serialize_args([1], {"scale": 10})) == 20


def test_python_app_runs_in_a_process_without_the_apps_folder(tmp_path: Path) -> None:
    apps_dir = tmp_path / "apps"
    apps_dir.mkdir()
    _write(
        apps_dir,
        "fn.py",
        """\
        import math
        from runner.apps import python_app

        OFFSET = 3

        @python_app
        def hyp(a, b):
            return math.hypot(a, b) + OFFSET
    """,
    )
    (app,) = load_apps(apps_dir)
    payload = app.to_create(1).serialized_function
    assert payload is not None
    args = serialize_args([3, 4])
    code = "import sys; from runner.apps import call_python; print(call_python(sys.argv[1], sys.argv[2]))"
    out = subprocess.run(
        [sys.executable, "-c", code, payload, args], capture_output=True, text=True, cwd="/", check=True
    )
    assert out.stdout.strip() == "8.0"
    assert deserialize(serialize_args([1], {"k": 2})) == ((1,), {"k": 2})


def test_a_failing_python_app_shows_its_source_lines_where_its_file_is_gone(tmp_path: Path) -> None:
    apps_dir = tmp_path / "apps"
    apps_dir.mkdir()
    source = _write(
        apps_dir,
        "fails.py",
        """\
        from runner.apps import python_app


        def check(message):
            raise ValueError(message)


        @python_app
        def explode(message):
            check(message)
    """,
    )
    (app,) = load_apps(apps_dir)
    payload = app.to_create(1).serialized_function
    assert payload is not None
    source.unlink()  # the job's host has no copy of the file
    code = (
        "import sys, traceback\n"
        "from runner.apps import call_python\n"
        "try:\n"
        "    call_python(sys.argv[1], sys.argv[2])\n"
        "except ValueError:\n"
        "    print(traceback.format_exc())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, payload, serialize_args(["kaboom"])],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    ).stdout
    assert f'File "{source}", line 10, in explode\n    check(message)' in out
    assert f'File "{source}", line 5, in check\n    raise ValueError(message)' in out
    assert "<dynamic-code>" not in out


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"bad.yml": "name: x\ncommand_template: [unclosed\n"}, r"bad\.yml: not valid YAML"),
        ({"bad.yml": "name: x\ncommand_template: echo\nnodes: 3\n"}, r"bad\.yml: nodes: Extra inputs"),
        ({"bad.yml": "description: no name\ncommand_template: echo\n"}, r"bad\.yml: name: Field required"),
        (
            {"bad.yml": "name: x\ncommand_template: echo\nresources: {num_nodes: 0}\n"},
            r"bad\.yml: resources\.num_nodes: Input should be greater",
        ),
        ({"bad.yml": "name: 'has space'\ncommand_template: echo\n"}, r"bad\.yml: app 'has space': name"),
        (
            {"bad.yml": 'name: x\ncommand_template: "echo \'open"\n'},
            r"bad\.yml: app 'x': .*closing quotation",
        ),
        ({"bad.py": "def f(:\n"}, r"bad\.py \(line 1\): SyntaxError"),
        ({"bad.py": "x = 1\nraise ValueError('boom')\n"}, r"bad\.py \(line 2\): ValueError: boom"),
        (
            {"bad.py": "from runner.apps import AppDef\nclass A(AppDef):\n    command_template = 'x'\n"},
            r"bad\.py: class A has no `name`",
        ),
        (
            {
                "a.yml": "name: dup\ncommand_template: 'true'\n",
                "b.yml": "name: dup\ncommand_template: 'true'\n",
            },
            r"b\.yml: app 'dup' is already defined in .*a\.yml",
        ),
        ({"empty.yml": ""}, r"empty\.yml: empty file"),
    ],
)
def test_loader_errors_name_the_file(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(AppDefinitionError, match=message):
        load_apps(tmp_path)


def test_missing_apps_folder(tmp_path: Path) -> None:
    with pytest.raises(AppDefinitionError, match="no such directory"):
        load_apps(tmp_path / "nope")


def _job(**kw: object) -> Job:
    base = dict(
        id=1,
        app_id=1,
        site_id=1,
        state="RUN_ERROR",
        parents=[],
        parameters={"steps": -1},
        serialized_args=None,
        tags={},
        environment={},
        workdir="x/1",
        num_nodes=1,
        ranks_per_node=1,
        threads_per_rank=1,
        gpus_per_rank=0,
        node_packing_count=1,
        wall_time_min=0,
        return_code=1,
        retry_count=0,
        retry_limit=1,
        data={},
        batch_job_id=None,
        session_id=None,
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )
    base.update(kw)
    return Job.model_validate(base)


def test_run_hook_outcomes(tmp_path: Path) -> None:
    class App(AppDef):
        name = "a"
        command_template = "run {steps}"

        def postprocess(self) -> JobState | None:
            self.data["seen"] = True
            return JobState.FAILED if self.params["steps"] < 0 else None

        def handle_error(self) -> None:
            raise RuntimeError("cannot recover")

    out = run_hook(App, "postprocess", _job(state="RUN_DONE"), tmp_path)
    assert out.state == JobState.FAILED and out.data == {"seen": True}
    # a hook that fails the job always leaves the reason in the Event (issue 16, defect 7)
    assert out.state_data["reason"] == "postprocess returned FAILED"
    out = run_hook(App, "postprocess", _job(state="RUN_DONE", parameters={"steps": 3}), tmp_path)
    assert out.state == JobState.POSTPROCESSED
    out = run_hook(App, "handle_error", _job(), tmp_path)
    assert out.state == JobState.FAILED and "cannot recover" in out.state_data["error"]
    assert out.state_data["reason"] == "handle_error raised RuntimeError: cannot recover"
    # Default decisions of the base hooks: retry while retries remain.
    assert run_hook(AppDef, "handle_timeout", _job(retry_count=0), tmp_path).state == JobState.RESTART_READY
    assert run_hook(AppDef, "handle_timeout", _job(retry_count=1), tmp_path).state == JobState.FAILED


def test_job_result_reads_the_result_or_raises_the_jobs_exception() -> None:
    from runner.apps import PythonJobError, job_result, serialize_function

    assert job_result(_job(state="JOB_FINISHED", data={"result": serialize_function(len)})) is len
    failed = _job(
        data={
            "exception": {
                "type": "ZeroDivisionError",
                "message": "division by zero",
                "traceback": "Traceback ...\n  x = 1 / 0\nZeroDivisionError: division by zero",
            }
        }
    )
    with pytest.raises(PythonJobError, match="job 1: ZeroDivisionError: division by zero"):
        job_result(failed)
    with pytest.raises(PythonJobError, match="no result yet"):
        job_result(_job(state="RUNNING"))
