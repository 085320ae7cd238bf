"""Progress accounting: seconds per step and the remaining time."""

from __future__ import annotations

import time


class Meter:
    def __init__(self, start_step: int, total: int):
        self.start, self.total, self.t0 = start_step, total, time.time()
        self.step_t = time.time()

    def tick(self) -> float:
        now = time.time()
        dt_, self.step_t = now - self.step_t, now
        return dt_

    def eta(self, step: int) -> float:
        done = step - self.start
        return (time.time() - self.t0) / max(1, done) * (self.total - step)
