"""The timing lock's window: ``released`` is stamped while the lock is still held, so no later
holder's ``acquired`` can precede it (a release stamped after the drop made two windows of a
distributed study look overlapped)."""
from __future__ import annotations

import tempfile
import threading
import time

from prunebench.study.executor import with_lock
from prunebench.study.locks import host_lock
from prunebench.study.rows import JobStatus, ResultRow


def test_release_is_stamped_before_the_next_holder_acquires(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    waiting, got = threading.Event(), []

    def next_holder():
        waiting.set()
        with host_lock("window") as h:
            got.append(h)

    t = threading.Thread(target=next_holder)
    with host_lock("window") as held:
        assert "released" not in held
        t.start()
        waiting.wait()
        time.sleep(0.05)               # the other thread now polls the held lock
    t.join()
    second = got[0]
    assert held["acquired"] <= held["released"] <= second["acquired"] <= second["released"]
    assert second["waited_s"] > 0.03
    row = ResultRow(job_hash=None, kind="latency", status=JobStatus.OK, model="m", spec={})
    time.sleep(0.01)
    with_lock(row, held)              # stored after the drop: keeps the lock's own stamp
    assert row.extra["timing_lock"]["released"] == held["released"]
    inside = ResultRow(job_hash=None, kind="latency", status=JobStatus.OK, model="m", spec={})
    with host_lock("window") as h:
        with_lock(inside, h)          # stored inside the window: stamped when stored
        assert h["acquired"] <= inside.extra["timing_lock"]["released"] <= time.time()
