"""The command line: ``mnist-course check`` and ``mnist-course train`` (also ``python -m mnist_course``)."""

from __future__ import annotations

import argparse
import sys

from mnist_course import env


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mnist-course``."""
    parser = argparse.ArgumentParser(prog="mnist-course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check Python, packages, device and data (chapter 0)")
    check.add_argument(
        "--data-root", help="folder holding MNIST/raw/ (default: $MNIST_COURSE_DATA)"
    )
    return parser


def run_check(args: argparse.Namespace) -> int:
    """Print the environment report; exit code 1 when something must be fixed."""
    checks = env.check_environment(args.data_root)
    print(env.format_report(checks))
    return 0 if all(c.ok for c in checks) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script ``mnist-course``."""
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return run_check(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
