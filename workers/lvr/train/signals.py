"""Preemption: SIGTERM / SIGINT become a flag the loops check at step boundaries."""

from __future__ import annotations

import signal


class StopFlag:
    """SIGTERM/SIGINT set a flag; the loop saves at the next step boundary and exits with EXIT_PREEMPTED."""

    def __init__(self):
        self.requested = False
        self.signal = None
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.requested = True
        self.signal = signal.Signals(signum).name
