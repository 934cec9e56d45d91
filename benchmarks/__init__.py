"""Benchmarks of wesog_async against raw aiohttp (P0), a naive client (P2) and
httpx (P3), following ``BENCH.md``. Run ``python -m benchmarks --help``."""
