"""Benchmarks: plain functions called by ``acam bench ...`` (``run_beamform``, ``run_scaling``)."""
