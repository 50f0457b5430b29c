"""`python -m worker`: the fleet worker (the same as `executor-worker`)."""

from worker.service import main

main()
