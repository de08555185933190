"""``python -m sitegen`` and the ``sitegen`` program.

Ctrl-C while the command line loads (click and sitegen's modules, about a
tenth of a second) ends as it does while a command runs: "interrupted" and
exit status 130, no traceback. (In the moment click parses the arguments, its
own "Aborted!" and status 1 apply.)
"""

import sys


def run() -> None:
    try:
        from sitegen.cli import program
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    program()


if __name__ == "__main__":
    run()
