"""Networks made ready to deploy: spectral norm folded (``fold``), reduced precision with
FP32 norms (``precision``), the bundle's deploy weights (``weights``), and the torch runner
(``runner``) the runtime finds through the ``sdk.backends`` entry point."""
