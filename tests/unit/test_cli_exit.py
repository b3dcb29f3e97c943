"""How the ``leaderboard`` command ends when it is told to: SIGTERM and SIGHUP unwind it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.main import termination_as_exit

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_unwinds_and_the_handlers_are_put_back(signum: int) -> None:
    before = signal.getsignal(signum)
    unwound = []
    with pytest.raises(SystemExit) as exited, termination_as_exit():
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler runs at the next bytecode: never reached
        finally:
            unwound.append(True)
    assert exited.value.code == 128 + signum
    assert unwound == [True]
    assert signal.getsignal(signum) is before


def test_a_terminated_command_stops_what_it_started(tmp_path: Path) -> None:
    """`leaderboard run` killed with SIGTERM while it seeds the embedded database: the server it
    started is stopped on the way out, not left running for nobody."""
    state = tmp_path / "state"
    command = [
        sys.executable, "-m", "cli.main", "run", "--state-dir", str(state),
        "--battles", "200000", "--workers", "0",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("seeding the local database"):
            break
    else:
        raise AssertionError(f"the run ended before seeding (exit {process.wait()})")
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 128 + signal.SIGTERM
    from local import postgres

    assert not postgres.is_running(state / "postgres"), "the embedded PostgreSQL was left running"
