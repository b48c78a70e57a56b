"""Helpers for the mnist-course notebooks: one small module per job.

- ``data``: the MNIST files, their checks, the dataset, the splits and the in-memory fast path
- ``runtime``: seeds and device choice
- ``env``: the environment check of chapter 0
- ``losses``: cross-entropy in NumPy, mirroring PyTorch (chapters 1-2)
- ``exercises``, ``quiz``, ``chapterNN``: the chapters' checked exercises and quizzes
- ``models``: the lecture notes' MLP and a small CNN
- ``training``: training and evaluation loops, the one-cycle recipe, checkpoints
- ``plots``: the figures, one function per picture
- ``cli``: the ``mnist-course`` command line (``check`` and ``train`` need only a plain
  install; ``student``, ``slides`` and ``grade``, the teacher's tools, need the ``lab`` extra)
"""

__version__ = "0.1.0"
