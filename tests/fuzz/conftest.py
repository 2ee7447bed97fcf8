"""Settings every fuzz target shares, and the alarms that turn a hang into a failure.

``PULLGATE_FUZZ_EXAMPLES`` sets the examples per target (10,000 by default, the CI figure); a
smaller number gives a quick local run. The profile is applied per test (``@FUZZ``), never
loaded globally, so the other hypothesis tests of the suite keep their own settings.

The examples are derandomized: every run of ``make test`` tries the same 10,000 per target, so
CI is reproducible and a red run is a change's doing. ``PULLGATE_FUZZ_RANDOM=1`` draws new
ones (exploratory fuzzing; what it finds becomes an ``@example``).

No hang: hypothesis fails an example slower than ``PULLGATE_FUZZ_DEADLINE_MS`` (it reruns it to
rule out noise), a SIGALRM fails a test that runs longer than its budget, and faulthandler
ends the whole fuzz run with every thread's stack if something blocks in C where no Python
signal handler can run.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType

import pytest
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("PULLGATE_FUZZ_EXAMPLES", "10000"))
DEADLINE_MS = int(os.environ.get("PULLGATE_FUZZ_DEADLINE_MS", "5000"))
# One target may take this long; generous for a loaded 2-core CI machine.
TEST_BUDGET_S = int(os.environ.get("PULLGATE_FUZZ_TEST_BUDGET_S", str(max(300, EXAMPLES // 20))))
SUITE_BUDGET_S = int(os.environ.get("PULLGATE_FUZZ_SUITE_BUDGET_S", str(10 * TEST_BUDGET_S)))

settings.register_profile(
    "pullgate-fuzz",
    max_examples=EXAMPLES,
    deadline=timedelta(milliseconds=DEADLINE_MS),
    database=None,  # no .hypothesis directory; failures print the example to reproduce
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    derandomize=os.environ.get("PULLGATE_FUZZ_RANDOM") != "1",
)
FUZZ = settings.get_profile("pullgate-fuzz")


def scaled(fraction: float, minimum: int = 1) -> settings:
    """The fuzz profile with a fraction of the examples (targets that pay a real RPC each)."""
    return settings(FUZZ, max_examples=max(minimum, int(EXAMPLES * fraction)))


class Hang(Exception):
    """A fuzz target ran longer than its budget."""


@pytest.fixture(scope="package", autouse=True)
def _suite_alarm() -> Iterator[None]:
    faulthandler.dump_traceback_later(SUITE_BUDGET_S, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _test_alarm() -> Iterator[None]:
    def fire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"this fuzz target ran longer than {TEST_BUDGET_S} s (hang?)")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(TEST_BUDGET_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
