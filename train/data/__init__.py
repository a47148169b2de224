"""Datasets: the official repositories' layouts and a procedural dataset needing no download."""
