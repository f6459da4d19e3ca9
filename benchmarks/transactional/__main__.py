"""``python -m benchmarks.transactional``: see ``benchmarks.transactional.cli``."""

from benchmarks.transactional.cli import main

if __name__ == "__main__":
    main()
