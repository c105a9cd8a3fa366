"""Area markers: registered with usage text, applied by folder, selected by -m."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from harness.markers import AREAS, folder_areas

ROOT = PurePath("/repo")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("suites/site/transfer/test_x.py", ("site", "transfer")),
        ("suites/site/launcher_mpi/test_x.py", ("site", "launcher_mpi")),
        ("suites/site/test_agent.py", ("site",)),
        ("suites/server/test_x.py", ("server",)),
        ("suites/integration/test_x.py", ("integration",)),
        ("suites/benchmark/deep/er/test_x.py", ("benchmark",)),
        ("suites/harness/test_x.py", ("harness",)),
        ("suites/test_top.py", ()),
        ("elsewhere/site/test_x.py", ()),
    ],
)
def test_folder_areas(path: str, expected: tuple[str, ...]) -> None:
    assert folder_areas(ROOT / path, ROOT) == expected


def test_markers_are_registered_with_usage(tree: pytest.Pytester) -> None:
    result = tree.runpytest("--markers")
    for area in AREAS:
        result.stdout.fnmatch_lines([f"@pytest.mark.{area}: *"])
    result.stdout.fnmatch_lines(
        ["@pytest.mark.location(name, ...): *", "@pytest.mark.requires(feature, ...): *"]
    )


TEST_MARKERS = """
def test_markers(request):
    print("MARKERS", sorted(m.name for m in request.node.iter_markers()))
"""


def _layout(tree: pytest.Pytester) -> None:
    for folder in (
        "site/transfer",
        "site/launcher_mpi",
        "site/scheduler",
        "server",
        "integration",
        "benchmark",
        "harness",
    ):
        path = tree.path / "suites" / folder
        path.mkdir(parents=True)
        name = folder.replace("/", "_")
        (path / f"test_{name}.py").write_text(TEST_MARKERS)


def test_folder_gives_markers(tree: pytest.Pytester) -> None:
    _layout(tree)
    result = tree.runpytest("-s")
    result.assert_outcomes(passed=7)
    out = result.stdout.str()
    for path, markers in [
        ("site/transfer/test_site_transfer.py", "['site', 'transfer']"),
        ("site/launcher_mpi/test_site_launcher_mpi.py", "['launcher_mpi', 'site']"),
        ("site/scheduler/test_site_scheduler.py", "['scheduler', 'site']"),
        ("server/test_server.py", "['server']"),
        ("integration/test_integration.py", "['integration']"),
        ("benchmark/test_benchmark.py", "['benchmark']"),
        ("harness/test_harness.py", "['harness']"),
    ]:
        assert f"suites/{path} MARKERS {markers}" in out


@pytest.mark.parametrize(
    ("expr", "selected"),
    [
        ("site", 3),
        ("site and not scheduler", 2),
        ("transfer or server", 2),
        ("integration", 1),
        ("benchmark", 1),
    ],
)
def test_dash_m_selects_by_folder(tree: pytest.Pytester, expr: str, selected: int) -> None:
    _layout(tree)
    result = tree.runpytest("-m", expr)
    result.assert_outcomes(passed=selected)


def test_dash_m_site_equals_path_selection(tree: pytest.Pytester) -> None:
    _layout(tree)
    by_marker = tree.runpytest("-m", "site", "--collect-only", "-q")
    by_path = tree.runpytest("suites/site", "--collect-only", "-q")
    ids = lambda r: sorted(line for line in r.stdout.lines if "::" in line)  # noqa: E731
    assert ids(by_marker) == ids(by_path)
    assert len(ids(by_marker)) == 3


def test_unknown_marker_is_an_error_with_strict_markers(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/site/test_typo.py": "import pytest\n@pytest.mark.sit\ndef test_x(): pass\n"})
    result = tree.runpytest()
    result.stdout.fnmatch_lines(["*'sit' not found in `markers` configuration option*"])


DB_TEST = """
def test_db(tolu_database):
    print("DATABASE", tolu_database)
"""


def test_server_and_api_tests_run_on_every_database(tree: pytest.Pytester) -> None:
    tree.makepyfile(
        **{
            "suites/server/test_s.py": DB_TEST,
            "suites/api/test_a.py": DB_TEST,
            "suites/site/test_t.py": DB_TEST,
        }
    )
    result = tree.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines_random(
        [
            "suites/server/test_s.py::test_db[[]sqlite[]]",
            "suites/server/test_s.py::test_db[[]postgresql[]]",
            "suites/api/test_a.py::test_db[[]sqlite[]]",
            "suites/api/test_a.py::test_db[[]postgresql[]]",
            "suites/site/test_t.py::test_db",
        ]
    )
    only = tree.runpytest("-s", "--database", "postgresql", "--location", "workstation", "suites/site")
    only.stdout.fnmatch_lines(["*DATABASE postgresql*"])


def test_a_databases_mark_narrows_the_databases(tree: pytest.Pytester) -> None:
    marked = "import pytest\n@pytest.mark.databases('postgresql')" + DB_TEST
    tree.makepyfile(**{"suites/server/test_s.py": marked, "suites/site/test_t.py": marked})
    result = tree.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines_random(
        ["suites/server/test_s.py::test_db[[]postgresql[]]", "suites/site/test_t.py::test_db[[]postgresql[]]"]
    )
    result.stdout.no_fnmatch_line("*sqlite*")
    # --database sqlite leaves it none: skipped, never run on the other one
    none = tree.runpytest("-rs", "--database", "sqlite", "suites/server")
    none.assert_outcomes(skipped=1)
    none.stdout.fnmatch_lines(["*empty parameter set*"])
    # a misspelt database is an error, not a test quietly never run
    tree.makepyfile(**{"suites/server/test_s.py": marked.replace("'postgresql'", "'postgres'")})
    typo = tree.runpytest("--collect-only", "-q", "suites/server")
    assert typo.ret != 0
    typo.stdout.fnmatch_lines(["*databases(): unknown postgres (known: sqlite, postgresql)*"])


def test_postgresql_case_skips_or_fails_without_postgres(
    tree: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.makepyfile(**{"suites/api/test_a.py": DB_TEST})
    # a PostgreSQL that is not there: nothing listens on port 1
    monkeypatch.setenv("TOLU_TEST_POSTGRES_URL", "postgresql+psycopg://tolu:tolu@127.0.0.1:1/postgres")
    result = tree.runpytest()
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*requires postgres: postgres: cannot connect to *127.0.0.1:1*"])
    required = tree.runpytest("--require", "postgres")
    required.assert_outcomes(passed=1, errors=1)
    required.stdout.fnmatch_lines(["*required component missing (postgres in --require): postgres: cannot*"])


def test_bad_database_is_a_usage_error(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/test_x.py": "def test_x(): pass"})
    result = tree.runpytest("--database", "oracle")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--database: unknown database 'oracle' (known: sqlite, postgresql)*"])
