"""Which recorded failures are still open after a resume answered some of them."""

from selfinstruct.pipeline import unresolved_failures
from selfinstruct.rundir import RunDir


def test_failures_answered_later_are_not_counted(tmp_path):
    run = RunDir(tmp_path)
    run.failures.append([
        {"id": "request-000003", "stage": "bootstrap", "reason": "HTTP 503"},
        {"id": "request-000004", "stage": "bootstrap", "reason": "HTTP 503"},
        {"id": "000001.00", "stage": "classify", "reason": "timeout"},
        {"id": "000001.01", "stage": "instances", "reason": "timeout"},
    ])
    run.instructions.append([{"id": "000003.00"}, {"id": "000001.00"}, {"id": "000001.01"}])
    run.classifications.append([{"id": "000001.00"}])
    open_ = unresolved_failures(run)
    assert [(f["stage"], f["id"]) for f in open_] == [("bootstrap", "request-000004"),
                                                      ("instances", "000001.01")]
