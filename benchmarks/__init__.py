"""Throughput benchmarks (run as modules, e.g. ``python -m benchmarks.bench_beamform``)."""
