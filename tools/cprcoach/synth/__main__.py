"""python -m cprcoach.synth --config config.yaml [--raw-dir DIR] [--force] [-v]"""

from cprcoach.synth.dataset import main

if __name__ == "__main__":  # worker processes import this module too
    raise SystemExit(main())
