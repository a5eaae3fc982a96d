"""`python -m cprcoach.model`: the model stage's commands (backbone, imagine, summary, assess)."""

from cprcoach.model.cli import main

main()
