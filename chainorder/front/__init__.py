"""The front: figures (``plot``, ``sparseplot``, ``fidelity``), the command line (``cli``) and
the execution zoos (``zoo``, ``sparsezoo``) that ``chainorder demo``/``bench`` and ``benchmarks/`` time. Imports the
core and the backend; nothing imports it but the package's lazy attributes.
"""
