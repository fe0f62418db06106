"""Progress without a terminal: plain lines with jobs done, failed and the time left."""
import io
import subprocess
import sys

import pytest

from prunebench.study.display import Display


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_lines_every_n_jobs_with_failures_and_time_left():
    out, clock = io.StringIO(), FakeClock()
    d = Display(True, stream=out, clock=clock)
    d.start(40, 400.0)  # 40 jobs estimated at 10 s each; a line every 40/20 = 2 jobs
    for i in range(10):
        clock.t += 5.0  # each job takes half its estimate
        if i == 3:
            d.fail()
        d.advance(10.0)
    d.stop()
    lines = out.getvalue().splitlines()
    assert lines[0] == "prunebench: 40 jobs to run, estimated 6:40"
    assert len(lines) == 1 + 5 + 1  # start, after jobs 2, 4, 6, 8, 10, end
    # after 10 jobs: 50 s spent on 100 estimated s, 300 estimated s left at that pace -> 150 s
    assert lines[5] == ("prunebench: 10/40 jobs (25%), 1 failed, 0:50 elapsed, ~2:30 left")
    assert lines[1] == ("prunebench: 2/40 jobs (5%), 0 failed, 0:10 elapsed, ~3:10 left")
    assert lines[-1] == "prunebench: 10/40 jobs (25%), 1 failed, 0:50 elapsed, stopped"


def test_a_line_per_minute_when_jobs_are_slow():
    out, clock = io.StringIO(), FakeClock()
    d = Display(True, stream=out, clock=clock, every_jobs=1000)
    d.start(3, 90.0)
    for seconds in (30.0, 40.0, 20.0):  # the second job crosses the minute, the third not
        clock.t += seconds
        d.advance(30.0)
    d.stop()
    lines = out.getvalue().splitlines()
    assert lines == ["prunebench: 3 jobs to run, estimated 1:30",
                     "prunebench: 2/3 jobs (66%), 0 failed, 1:10 elapsed, ~0:35 left",
                     "prunebench: 3/3 jobs (100%), 0 failed, 1:30 elapsed, finished"]


def test_disabled_display_prints_nothing():
    out = io.StringIO()
    d = Display(False, stream=out)
    d.start(5, 10.0)
    d.fail()
    d.advance(2.0)
    d.stop()
    assert out.getvalue() == ""


@pytest.mark.slow
def test_study_command_prints_progress_lines_into_a_log(tmp_path):
    """`prunebench study` with stdout and stderr going to a file (make demo > log 2>&1)."""
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [digits-lenet300]\nmethods: [magnitude]\nsparsities: [0.9]\n"
                    "formats: [dense]\nengines: [torch-dense]\n"
                    "measure: {warmup: 1, min_runs: 3, min_time: 0.0, max_time: 0.1}\n")
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "prunebench", "study", str(spec),
                             "--out", str(tmp_path / "out")], stdout=f, stderr=f).returncode
    text = log.read_text()
    assert rc == 0, text
    lines = [ln for ln in text.splitlines() if ln.startswith("prunebench: ")]
    assert "jobs to run, estimated" in lines[0]
    n = int(lines[0].split()[1])
    assert lines[-1].startswith(f"prunebench: {n}/{n} jobs (100%), 0 failed,")
    assert lines[-1].endswith("finished")
