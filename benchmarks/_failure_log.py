"""A pytest plugin for test runs on the device machine, whose time limit can end pytest before its
summary: each failed or errored test's id and the tail of its report are appended to $FAILURE_LOG as
they happen (with pytest-xdist, by the controller, from the workers' reports).

    FAILURE_LOG=failures.txt python3 -m pytest -p benchmarks._failure_log ...
"""

import os


def pytest_runtest_logreport(report):
    if report.failed and not os.environ.get("PYTEST_XDIST_WORKER"):
        with open(os.environ.get("FAILURE_LOG", "failures.txt"), "a") as log:
            log.write(f"=== {report.nodeid} [{report.when}]\n{str(report.longrepr)[-1200:]}\n")
