"""``python -m mnist_course``: the same command line as ``mnist-course``."""

from mnist_course.cli import main

raise SystemExit(main())
