"""`python -m coach_plans_api` and the `coach-plans-api` script.

The command line is imported inside the guard: Ctrl-C while its modules load (a second or two)
ends like any interrupt, one line and exit 130, not a traceback.
"""

import sys

EXIT_INTERRUPTED = 130


def run() -> None:
    try:
        from coach_plans_api.cli import main

        code = main()
    except KeyboardInterrupt:
        print("coach-plans-api: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    run()
