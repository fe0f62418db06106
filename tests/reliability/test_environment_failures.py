"""A job that fails because of the machine (a full disk, a disk quota, no memory) is stored as
*failed*, never as *skipped*, and a plain resume runs it again; a report that cannot be
written makes the study exit 2 with one line (issue 18, item 1).

How the full disk is simulated (no tmpfs without root): ``save_container`` under
``RLIMIT_FSIZE`` in a child process (the kernel's EFBIG, the same failed ``write()`` as
ENOSPC); in the study, ``safetensors``' writer monkeypatched to raise the error it raises on
a full disk (``SafetensorError: ... I/O error: No space left on device (os error 28)``) for
files under ``OUT/.work``; for the report, its atomic writer monkeypatched to raise
``OSError(ENOSPC)``."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap


import pytest

from ..study_helpers import job_table
from .helpers import check_db


@pytest.mark.slow
def test_save_container_on_a_full_disk_raises_oserror_not_bad_input(tmp_path):
    script = textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np
        from prunebench.formats import FORMATS
        from prunebench.formats.container import save_container
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        fmt = FORMATS.get("dense").from_dense(np.ones((200, 200), dtype=np.float32))
        try:
            save_container({str(tmp_path / 'm.pbm')!r}, {{"fc": fmt}})
        except OSError as e:
            print("OSError", e.errno)
        except Exception as e:
            print(type(e).__name__, e)
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == f"OSError {errno.EFBIG}", proc.stdout + proc.stderr[-2000:]
    assert os.listdir(tmp_path) == []  # no temporary file left


def test_full_disk_job_is_failed_then_run_by_a_resume(tiny_spec, tiny_reference, tmp_path,
                                                       monkeypatch):
    from safetensors import SafetensorError

    import prunebench.formats.container as container
    from prunebench.study.runner import ENV_FAILURE, run_study
    from prunebench.study.spec import load_spec

    real = container.save_file

    def full_disk(tensors, path, *a, **kw):
        if f"{os.sep}.work{os.sep}" in str(path):
            raise SafetensorError("Error while serializing: I/O error: No space left on "
                                  "device (os error 28)")
        return real(tensors, path, *a, **kw)

    out = tmp_path / "runs"
    spec = load_spec(str(tiny_spec))
    monkeypatch.setattr(container, "save_file", full_disk)
    run_study(spec, out, progress=False, report=False)
    db = out / "results.sqlite"
    table = check_db(db)
    size_hashes = {h for h, s in table.items() if s == "failed"}
    assert size_hashes, "no job met the full disk"
    # nothing the full disk hit is stored as a skip: skips are exactly the reference's
    assert {h for h, s in table.items() if s == "skipped"} == \
        {h for h, s in tiny_reference.items() if s == "skipped"}
    assert all(tiny_reference[h] == "ok" for h in size_hashes)
    import sqlite3
    c = sqlite3.connect(db)
    reasons = [r for (r,) in c.execute("SELECT reason FROM results WHERE status='failed'")]
    kinds = {k for (k,) in c.execute("SELECT kind FROM results WHERE status='failed'")}
    c.close()
    assert kinds == {"size"}
    assert all(r.startswith(ENV_FAILURE) and "No space left on device" in r for r in reasons), \
        reasons
    # the dry run counts them as to run, as the resume will
    from prunebench.cli.study import dry_run_summary

    assert dry_run_summary(spec, out)["pending"] == len(size_hashes)
    # space back: the plain resume (no --retry-failed) runs them again
    monkeypatch.setattr(container, "save_file", real)
    summary = run_study(spec, out, progress=False, report=False)
    assert summary["ran"] == len(size_hashes)
    assert check_db(db) == tiny_reference


def test_report_on_a_full_disk_exits_2_with_one_line(tiny_reference_db, tmp_path, capsys,
                                                     monkeypatch, tiny_spec):
    import prunebench.report as report
    from prunebench.cli import main

    out = tmp_path / "runs"
    out.mkdir()
    shutil.copy(tiny_reference_db, out / "results.sqlite")
    shutil.copytree(tiny_reference_db.parent / "models", out / "models")
    before = job_table(out / "results.sqlite")

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(report, "_atomic_write", full_disk)
    code = main(["study", str(tiny_spec), "--out", str(out)])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, cap
    assert len(lines) == 1 and lines[0].startswith("prunebench: error: cannot write the report"), \
        cap.err
    assert "No space left on device" in lines[0] and "prunebench report" in lines[0]
    assert "Traceback" not in cap.err
    assert not (out / "report.html").exists() and not (out / "report.md").exists()
    assert job_table(out / "results.sqlite") == before
