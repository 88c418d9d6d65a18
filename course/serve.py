"""`python -m course.serve` (`make gateway`): serve the gateway of the implementation LAB_IMPL
(or `--impl`) selects: `reference_impl`, or the learner's `labs`.

The rest of the command line is that package's own (`python -m reference_impl --help`).
"""

from __future__ import annotations

import argparse
import sys

from course import impl as impl_switch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--impl", choices=sorted(impl_switch.PACKAGES))
    chosen, rest = parser.parse_known_args(argv)
    try:
        if chosen.impl:
            impl_switch.select(chosen.impl)
        cli = impl_switch.load("cli")
    except impl_switch.ImplementationError as error:
        print(f"cannot start the gateway: {error}", file=sys.stderr)
        return 2
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())
