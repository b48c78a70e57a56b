"""Helpers for the mnist-course notebooks: one small module per job.

- ``data``: the MNIST files, their checks, the dataset and the in-memory fast path
- ``runtime``: seeds and device choice
- ``env``: the environment check of chapter 0
- ``losses``: cross-entropy in NumPy, mirroring PyTorch (chapters 1-2)
- ``exercises``: the checkers of the chapters' exercises (chapters 1-2)
- ``models``: the lecture notes' MLP and a small CNN (chapters 4-5)
- ``training``: training and evaluation loops, the one-cycle recipe, checkpoints (chapters 4-5)
- ``plots``: the figures, one function per picture
- ``cli``: the ``mnist-course`` command line
"""

__version__ = "0.1.0"
