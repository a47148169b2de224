"""Benchmarks (latency, FLOPs, paper claims) and quality metrics."""
