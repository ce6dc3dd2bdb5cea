"""Benchmark helpers: rival routers run on the same precomputed embeddings as ours.

Nothing here is imported by `stratarouter_core` itself; the rivals come from the `[bench]` extra.
"""

from __future__ import annotations

__all__: list[str] = []
