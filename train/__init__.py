"""PyTorch side of sdk: networks (``train.models``), losses, data and the trainer."""
