"""The last resort when the app leaves on a signal: the process ends, even if its terminal is gone.

After a hang-up (the SSH session dropped, the terminal window closed) nobody reads the terminal
any more, and Textual's shutdown still writes to it to restore the screen: its output thread can
die on the dead terminal while the main thread waits to hand it more, and the process sleeps
forever. On a shared box that is one stray process per dropped session. The app hands its leases
over first (reaper stopped, guardian started); this timer then makes sure the process exits.
"""

from __future__ import annotations

import os
import threading

EXIT_CODE = 0
"""A signalled leave is a clean one: the leases were handed over before the timer ran out."""


def exit_after(seconds: float, code: int = EXIT_CODE) -> threading.Timer:
    """End the process ``seconds`` from now unless it has ended by then.

    A daemon thread, so a normal exit does not wait for it; ``os._exit`` because the main thread
    may be the one stuck (in a write to a terminal that is gone) and cannot run cleanup anyway.
    """
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.name = "containerlease-exit-watchdog"
    timer.start()
    return timer
