import pytest

from . import fake_engines


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The built-in smoke study run once, uninterrupted, with the test engines registered:
    (output folder, summary)."""
    from prunebench.study.runner import run_study
    from prunebench.study.spec import load_spec

    fake_engines.register()
    out = tmp_path_factory.mktemp("smoke")
    summary = run_study(load_spec("smoke"), out, progress=False)
    return out, summary

