"""A throttled campaign through the whole pipeline: ``rate_per_minute`` held across worker
processes (``python -m benchmarks.ratelimit``)."""
