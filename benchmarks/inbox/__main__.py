from benchmarks.inbox.cli import main

main()
