"""pytest fixtures of the CoupeCircuit integration tests.

Environment:
  COUPECIRCUIT_BUILD_DIR   the CMake build tree (coupecircuitd, coupecircuitctl,
                           mod_coupecircuit.so; run directories are created
                           under <build>/tests/integration/run/<test>/)
  COUPECIRCUIT_SOURCE_DIR  the source tree
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (after the sys.path change above)


def pytest_configure(config):
    harness.become_subreaper()


def pytest_sessionfinish(session, exitstatus):
    harness.reap_orphans()


@pytest.fixture(scope="session")
def paths() -> harness.Paths:
    build = os.environ.get("COUPECIRCUIT_BUILD_DIR")
    source = os.environ.get("COUPECIRCUIT_SOURCE_DIR")
    if not build:
        pytest.fail("COUPECIRCUIT_BUILD_DIR is not set: run through ctest, or export it (the CMake build tree)",
                    pytrace=False)
    source_dir = Path(source).resolve() if source else Path(__file__).resolve().parents[2]
    result = harness.Paths(Path(build).resolve(), source_dir)
    for binary in (result.daemon, result.ctl):
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} is missing: build the project first", pytrace=False)
    return result


def _file_stem(request) -> str:
    return Path(str(request.node.fspath)).stem


@pytest.fixture
def run_dir(paths, request) -> Path:
    return harness.run_dir_for(paths, request.node.name, group=_file_stem(request))


def checked_log_scanner():
    """The body of logs and class_logs: yields a LogScanner, then fails on any
    unexpected line it found."""
    scanner = harness.LogScanner()
    yield scanner
    problems = scanner.problems()
    if problems:
        pytest.fail("unexpected lines in the logs:\n  " + "\n  ".join(problems), pytrace=False)


def helper_factory(paths, run_dir, logs):
    """The body of make_helper and make_class_helper: yields the factory, then
    stops every helper it made (SIGTERM, then SIGKILL)."""
    created: list[harness.Helper] = []

    def factory(start: bool = True, name: str = "helper", **options) -> harness.Helper:
        helper = harness.Helper(paths, harness.make_dir(run_dir / name), **options)
        logs.watch(helper.log_path, harness.HELPER_BAD_LINE)
        created.append(helper)
        if start:
            helper.start()
        return helper

    yield factory
    for helper in created:
        helper.stop()


@pytest.fixture
def logs():
    """Log files of the processes of one test. At teardown (after they have all
    stopped) any unexpected warning or error line fails the test; a test allows
    a line it causes on purpose with logs.allow(regex)."""
    yield from checked_log_scanner()


@pytest.fixture
def make_helper(paths, run_dir, logs):
    """make_helper(start=True, name="helper", **Helper options) -> Helper,
    stopped at teardown (SIGTERM, then SIGKILL)."""
    yield from helper_factory(paths, run_dir, logs)


@pytest.fixture
def helper(make_helper) -> harness.Helper:
    """A running coupecircuitd with its own session directory, snapshot and state."""
    return make_helper()


@pytest.fixture
def module_so(paths) -> Path:
    if not paths.module.is_file():
        pytest.skip(f"mod_coupecircuit.so not built ({paths.module} does not exist)")
    return paths.module


def apache_factory(paths, run_dir, logs):
    """The body of make_apache and make_class_apache: yields the factory,
    then stops every Apache it made (apache2 -k stop, php-fpm SIGQUIT)."""
    created: list[harness.Apache] = []

    def factory(variant: str, helper: harness.Helper, start: bool = True, name: str | None = None,
                **options) -> harness.Apache:
        root = harness.make_dir(run_dir / (name or f"apache-{variant}"))
        options.setdefault("snapshot", helper.snapshot)
        apache = harness.Apache(paths, root, variant, helper.session_dir, log_scanner=logs, **options)
        created.append(apache)
        if start:
            apache.start()
        return apache

    yield factory
    errors = []
    for apache in reversed(created):
        try:
            apache.stop()
        except AssertionError as error:
            errors.append(str(error))
    if errors:
        pytest.fail("stopping Apache failed:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def make_apache(paths, run_dir, logs):
    """make_apache(variant, helper, start=True, **Apache options) -> Apache,
    stopped at teardown (apache2 -k stop, php-fpm SIGQUIT) before the logs are
    checked."""
    yield from apache_factory(paths, run_dir, logs)


# ---------------------------------------------------------------- per class
# Servers shared by the tests of one class (mod_h2's conftest style): the
# class starts them once, its tests use them in order, and at the class's
# teardown they are stopped and their logs checked. Tests that change the
# shared state (cut, overrides) undo it, or the class says in which order
# they run. A parametrized class fixture needs a class-scoped parameter:
#   @pytest.mark.parametrize("variant", VARIANTS, scope="class")


@pytest.fixture(scope="class")
def class_run_dir(paths, request) -> Path:
    name = request.cls.__name__ if request.cls is not None else "module"
    params = getattr(request, "param", None)
    return harness.run_dir_for(paths, name if params is None else f"{name}-{params}", group=_file_stem(request))


@pytest.fixture(scope="class")
def class_logs():
    """The LogScanner of the class's servers; checked once they have stopped."""
    yield from checked_log_scanner()


@pytest.fixture(scope="class")
def make_class_helper(paths, class_run_dir, class_logs):
    """make_class_helper(start=True, name="helper", **Helper options) -> Helper
    shared by the class, stopped at the class's teardown."""
    yield from helper_factory(paths, class_run_dir, class_logs)


@pytest.fixture(scope="class")
def class_helper(make_class_helper) -> harness.Helper:
    """A running coupecircuitd shared by the tests of the class."""
    return make_class_helper()


@pytest.fixture(scope="class")
def make_class_apache(paths, class_run_dir, class_logs):
    """make_class_apache(variant, helper, start=True, name=None, **Apache
    options) -> Apache shared by the class; stopped at the class's teardown,
    before its logs are checked."""
    yield from apache_factory(paths, class_run_dir, class_logs)
