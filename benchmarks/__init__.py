"""Measurements (``sdk.benchmarks``): latency of every backend, the GPU check, paper claims,
scale and serving figures, and the quality-metric CLI."""
