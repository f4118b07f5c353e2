"""Run pytest, treating "no tests collected" (exit 5) as a failure with a clear message."""

import sys

import pytest

NO_TESTS_COLLECTED = 5

code = pytest.main(["-ra", "--durations=25", *sys.argv[1:]])
if code == NO_TESTS_COLLECTED:
    print("run_pytest: pytest collected no tests; that is a broken suite, not a pass")
    code = 1
sys.exit(int(code))
