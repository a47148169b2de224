"""The PyTorch side of sdk (``sdk.train``): networks (shared ``models``, one folder per
family in ``families``), losses, metrics, data, the trainer, and the deploy tools export
and the torch runner share. CLI: ``python -m train`` (checkout) or ``sdk-train``."""
