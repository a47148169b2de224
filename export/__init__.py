"""Turn networks into deployable artifacts: ONNX graphs, bundles, engines (``sdk.export``).

CLI: ``python -m export list | bundle | engine`` from a checkout, ``python -m sdk.export`` or
``sdk-export`` when installed. Needs the ``torch`` extra.
"""
