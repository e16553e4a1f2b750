"""The stages' entry points, which DVC (dvc.yaml) calls: each parses its arguments, reads its settings file and
calls one function of :mod:`headstart.workflow`. Each stage is ``python -m headstart.pipeline.<stage> ...``.
"""
