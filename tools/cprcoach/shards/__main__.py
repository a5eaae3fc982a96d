"""`python -m cprcoach.shards`: the shard stage's commands."""

from cprcoach.shards.cli import main

main()
