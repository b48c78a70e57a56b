"""Helpers for the mnist-course notebooks: one small module per job.

- ``data``: the MNIST files, their checks, the dataset, the splits and the in-memory fast path
- ``runtime``: seeds and device choice
- ``env``: the environment check of chapter 0
- ``losses``: cross-entropy in NumPy, mirroring PyTorch (chapters 1-2)
- ``exercises``, ``quiz``, ``chapterNN``: the chapters' checked exercises and quizzes
- ``models``: the lecture notes' MLP and a small CNN
- ``training``: training and evaluation loops, the one-cycle recipe, checkpoints
- ``plots``: the figures, one function per picture
- ``measured``: the benchmarks' stored results (``results/*.csv``, read by chapter 5)
- ``grade``, ``sandbox``, ``gradebook``: ``mnist-course grade`` (running learner notebooks
  with limits, as another account when root; the tables, gradebook CSV and feedback)
- ``student``, ``slides``, ``handout``: learner copies, offline decks, and handing the
  chapters out into a student's copy (the hub's update rules)
- ``cli``: the ``mnist-course`` command line (``check`` and ``train`` need only a plain
  install; ``student``, ``slides`` and ``grade``, the teacher's tools, need the ``lab`` extra)
"""

import os

__version__ = "0.1.0"

# PyTorch's CPU threads (OpenMP) spin while they wait for work: by default GNU OpenMP
# (libgomp, Linux's PyTorch) spins about 300,000 times before it sleeps. When another program
# keeps a core busy (a browser, a video call, a second notebook), a spinning thread waits on a
# core that is taken. 100 training steps of the notes' MLP in a Jupyter kernel on 2 cores took
# a median 0.29 s on a quiet machine and 14 s beside one busy loop. A short spin, then sleep
# (GOMP_SPINCOUNT=1000) took 0.31 s and 0.74 s; sleeping at once (OMP_WAIT_POLICY=PASSIVE)
# 0.51 s and 0.52 s, so it costs about 1.7x when the machine is quiet.
# benchmarks/wait_policy.py measures the three (mnist_course/results/wait_policy.csv).
# OpenMP reads it once, when torch is first imported: so it takes effect where this package
# is imported before torch (the mnist-course command); the grader passes it to the kernels it
# starts (sandbox.py), and `make lab` / `make test` / the hub set it for every kernel. A value
# already set is kept. It is GNU OpenMP's setting (Linux); LLVM's (macOS) ignores it.
WAIT_POLICY = {"GOMP_SPINCOUNT": "1000"}
for _name, _value in WAIT_POLICY.items():
    os.environ.setdefault(_name, _value)
