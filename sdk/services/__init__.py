"""The doors beyond one process, a layer above the runtime core: ``sdk batch`` (a data set on
Ray Data, :mod:`.batch`), ``sdk serve`` (an HTTP endpoint on Ray Serve, :mod:`.serve`) and
``sdk app`` (a painting page, :mod:`.app` and :mod:`.canvas`), with what they share
(:mod:`.common`: Ray start-up, the thread-count rule, the PNG encoder, isolation of bad
items) and ``python -m sdk`` (:mod:`.cli`). They import the core only through its public
API (names in a module's ``__all__``; ``tests/test_layers.py`` checks), and every label map
they receive goes through the bundle's :class:`sdk.LabelIntake`. Nothing here is imported
by ``import sdk``: Ray and Gradio load with their command.
"""
