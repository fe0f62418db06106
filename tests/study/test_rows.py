"""The executor's typed records (issue 19 item 5): a job's status is an Enum whose values are the
strings stored in SQLite and shown to users, and a result row or skip record becomes, at the
store, exactly the dict the study wrote before they were dataclasses (written out here by
hand), so stored rows are unchanged."""
import json

import pytest

from prunebench.study.jobs import expand
from prunebench.study.rows import JobStatus, ResultRow, SkipRecord, failed_row
from prunebench.study.runner import summarize
from prunebench.study.spec import validate
from prunebench.study.store import Store

SPEC = {"models": ["digits-lenet300"], "methods": ["magnitude"], "sparsities": [0.9],
        "formats": ["dense", "csr"], "engines": ["torch-dense", "native"]}


@pytest.fixture(scope="module")
def jobs():
    spec = validate(SPEC, source="rows")
    return spec, {(j.kind, j.engine, j.format, j.sparsity): j for j in expand(spec)}


def test_status_values_are_the_stored_strings():
    assert [s.value for s in JobStatus] == ["ok", "failed", "skipped-static",
                                            "skipped-runtime", "skipped", "pending"]
    assert JobStatus.OK == "ok" and f"{JobStatus.FAILED}" == "failed"
    assert str(JobStatus.SKIPPED_RUNTIME) == "skipped-runtime"
    assert json.dumps({JobStatus.OK: JobStatus.FAILED}) == '{"ok": "failed"}'
    assert {"ok": 1}[JobStatus.OK] == 1 and JobStatus("pending") is JobStatus.PENDING
    assert [s.skipped for s in JobStatus] == [False, False, True, True, True, False]


def test_failed_row_is_the_dict_the_store_always_took(jobs):
    _, by = jobs
    j = by[("latency", "native", "csr", 0.9)]
    row = failed_row(j, "verification: off by 1%", {"verify": {"ok": False}}).as_dict()
    before = {"job_hash": j.hash, "kind": "latency", "status": "failed",
              "reason": "verification: off by 1%", "model": "digits-lenet300",
              "method": "magnitude", "scope": "layer", "sparsity": 0.9, "seed": 0,
              "format": "csr", "value_encoding": "fp32", "engine": "native", "batch": 1,
              "threads": 1, "spec": j.key,
              "extra": {"method_label": "magnitude", "verify": {"ok": False}}}
    assert {k: v for k, v in row.items() if v is not None} == before
    assert type(row["status"]) is str


def test_rows_store_as_before(tmp_path, jobs):
    """A row stored from ``as_dict`` reads back with the fields the hand-written dict gave."""
    _, by = jobs
    pj = by[("prune", None, None, 0.9)]
    row = ResultRow.of(pj, JobStatus.OK, accuracy=0.5, param_bytes=123,
                       extra={"method_label": "magnitude", "masks": None})
    fp = {"id": "m" * 16}
    with Store(tmp_path / "r.sqlite") as s:
        s.add(row.as_dict(), fp)
        back = s.rows()[0]
    assert (back["kind"], back["status"], back["method"], back["format"], back["engine"],
            back["accuracy"], back["param_bytes"]) == ("prune", "ok", "magnitude", None, None,
                                                       0.5, 123)
    assert back["extra"] == {"method_label": "magnitude", "masks": None}
    assert back["spec"] == pj.key


def test_skip_record_is_the_dict_the_store_always_took(jobs):
    _, by = jobs
    j = by[("latency", "torch-dense", "csr", 0.9)]
    assert j.skip  # torch-dense runs no csr
    assert SkipRecord.of(j, j.skip, "static").as_dict() == {
        "job_hash": j.hash, "stage": "static", "kind": "latency", "model": "digits-lenet300",
        "method": "magnitude", "sparsity": 0.9, "format": "csr", "engine": "torch-dense",
        "batch": 1, "seed": 0, "reason": j.skip, "spec": j.key}


def test_timed_settings_and_summary_counts(jobs, tmp_path):
    spec, by = jobs
    t = by[("latency", "native", "csr", 0.9)].timed()
    assert (t.engine, t.format, t.values, t.batch, t.threads) == ("native", "csr", "fp32", 1, 1)
    with pytest.raises(ValueError, match="prune job has no format"):
        by[("prune", None, None, 0.9)].timed()
    all_jobs = list(by.values())
    status = {all_jobs[0].hash: "ok", all_jobs[1].hash: "failed",
              all_jobs[2].hash: "skipped-static", all_jobs[3].hash: "skipped-runtime"}
    s = summarize(spec, all_jobs, status, tmp_path / "r.sqlite")
    assert (s["jobs"], s["done"], s["failed"], s["skipped"], s["pending"]) == (
        len(all_jobs), 1, 1, 2, len(all_jobs) - 4)
    assert sum(sum(v.values()) for v in s["by_kind"].values()) == len(all_jobs)
    assert all(type(k) is str for v in s["by_kind"].values() for k in v)
