"""Timing a GPU body replayed as one CUDA graph (the GPU benches' shared helper)."""

from __future__ import annotations

import statistics

import torch


def time_graph(fn, reps: int, calls: int) -> float:
    """Median µs per call of `fn` (which makes `calls` calls), replayed as one CUDA graph `reps` times; warmed up
    twice on a side stream before the capture."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / calls)
    return statistics.median(times)
