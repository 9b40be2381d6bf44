"""The front: figures (``plot``), the command line (``cli``) and the execution zoo
(``zoo``) that ``chainorder demo``/``bench`` and ``benchmarks/`` time. Imports the
core and the backend; nothing imports it but the package's lazy attributes.
"""
