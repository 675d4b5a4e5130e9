"""Throughput benchmarks (run as modules, e.g. ``python -m acam.benchmarks.bench_beamform``)."""
