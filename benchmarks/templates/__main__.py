"""``python -m benchmarks.templates``: see ``benchmarks.templates.run``."""

from benchmarks.templates.run import main

if __name__ == "__main__":
    main()
