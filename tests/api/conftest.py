"""The session's stack (see latchkey_stack.py) and a closing summary of what the fuzzing sent."""

import pathlib
import tempfile

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from latchkey_stack import Stack

# Hypothesis caches Unicode tables in ./.hypothesis by default; keep the tree clean.
set_hypothesis_home_dir(pathlib.Path(tempfile.gettempdir()) / "latchkey-hypothesis")

_STACK: list[Stack] = []


@pytest.fixture(scope="session")
def stack():
    started = Stack.start()
    _STACK.append(started)
    yield started
    started.stop()
    # A panic after the last case (or in a request no case made) still fails the run.
    panics = started.new_panics()
    assert not panics, f"the functions panicked (their output: {started.log_path}): {panics}"
    started.log_path.unlink()


def pytest_terminal_summary(terminalreporter):
    if not _STACK or not _STACK[0].statuses:
        return
    statuses = _STACK[0].statuses
    terminalreporter.section("schemathesis: requests per operation, by status")
    for label in sorted(statuses):
        counts = statuses[label]
        ordered = sorted(counts.items(), key=lambda item: str(item[0]))
        by_status = ", ".join(f"{status}: {count}" for status, count in ordered)
        terminalreporter.write_line(f"{label:45} {sum(counts.values()):5}  ({by_status})")
    total = sum(sum(counts.values()) for counts in statuses.values())
    terminalreporter.write_line(f"{'total':45} {total:5}")
