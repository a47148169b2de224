"""Turn networks into deployable artifacts: ONNX graphs, bundles, engines.

CLI: ``python -m export list | bundle``. Needs the ``torch`` extra.
"""
