"""`python -m cprcoach.flow`: the flow stage's commands."""

from cprcoach.flow.cli import main

main()
