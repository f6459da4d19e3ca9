from benchmarks.ratelimit.run import main

main()
