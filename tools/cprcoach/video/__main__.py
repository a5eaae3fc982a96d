"""`python -m cprcoach.video`: the video stage's commands (resize, summary)."""

from cprcoach.video.cli import main

main()
