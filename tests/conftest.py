import os
from pathlib import Path

import pytest

from .study_helpers import job_table, run_reference, tiny_spec_text, write_spec

# Trained checkpoints are shared between tests (and with `make demo`) through this cache.
os.environ.setdefault("PRUNEBENCH_CACHE",
                      str(Path(__file__).resolve().parents[1] / ".cache" / "prunebench"))


# Slow tests in files other engineers are editing (move the marks into the files when they are
# done): each starts the CLI in a child process, trains, or compiles a model on two engines.
SLOW_ELSEWHERE = {
    "tests/test_cli_user_models.py": None,  # every test: a child process
    "tests/runtime/test_user_models.py": {"test_whole_graph_engines_run_or_refuse_in_one_line"},
    "tests/test_zoo.py": {"test_checkpoint_is_cached", "test_mnist1d_matches_package_defaults"},
}


def pytest_collection_modifyitems(config, items):
    """Marks the tests of ``SLOW_ELSEWHERE`` as ``slow`` (``make check`` leaves them out)."""
    root = Path(__file__).resolve().parents[1]
    for item in items:
        path = Path(str(item.path)).resolve()
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            continue
        if rel in SLOW_ELSEWHERE:
            names = SLOW_ELSEWHERE[rel]
            if names is None or item.originalname in names:
                item.add_marker(pytest.mark.slow)


@pytest.fixture
def fake_clock():
    """A clock that advances by the durations a test scripts."""

    class Clock:
        def __init__(self):
            self.t = 0.0
            self.step = 0.01

        def __call__(self):
            return self.t

        def advance(self, dt=None):
            self.t += self.step if dt is None else dt

    return Clock()


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory) -> Path:
    """The tiny study's spec file (:mod:`tests.study_helpers`)."""
    return write_spec(tmp_path_factory.mktemp("spec"),
                      tiny_spec_text("tiny-reliability", description="reliability tests"))


@pytest.fixture(scope="session")
def tiny_reference_db(tiny_spec, tmp_path_factory) -> Path:
    """The database of an uninterrupted run of the tiny study (in-process, no report)."""
    return run_reference(tiny_spec, tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="session")
def tiny_reference(tiny_reference_db) -> dict[str, str]:
    """{job_hash: status} of an uninterrupted run of the tiny study."""
    table = job_table(tiny_reference_db)
    assert len(table) == 40
    return table
