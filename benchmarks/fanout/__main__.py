"""``python -m benchmarks.fanout``: see ``benchmarks.fanout.cli``."""

from benchmarks.fanout.cli import main

if __name__ == "__main__":
    main()
