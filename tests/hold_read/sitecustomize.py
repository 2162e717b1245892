"""Run at the start of every Python process given this folder on PYTHONPATH (tests/test_csv.py).
In a fit process (its last argument names it retrainctl-fit), opening the file
$RETRAINCTL_TEST_HOLD_PATH waits until the file $RETRAINCTL_TEST_HOLD_UNTIL exists (120 s at
most): a test can change the data between the decision to train and the fit's read of it, in
that order every time, whatever the machine's load."""
import builtins
import os
import sys
import time

_held = os.environ.get("RETRAINCTL_TEST_HOLD_PATH")
_until = os.environ.get("RETRAINCTL_TEST_HOLD_UNTIL")

if _held and _until and len(sys.argv) > 1 and sys.argv[-1].startswith("retrainctl-fit"):
    _open = builtins.open
    _held = os.path.realpath(_held)

    def _open_when_released(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and os.path.realpath(file) == _held:
            deadline = time.monotonic() + 120
            while not os.path.exists(_until) and time.monotonic() < deadline:
                time.sleep(0.01)
        return _open(file, *args, **kwargs)

    builtins.open = _open_when_released
