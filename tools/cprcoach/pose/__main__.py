"""`python -m cprcoach.pose`: the pose stage's commands (estimate, qc, overlay, bench)."""

from cprcoach.pose.cli import main

main()
