"""Shared building blocks. One module per kind of layer; families import from here."""
