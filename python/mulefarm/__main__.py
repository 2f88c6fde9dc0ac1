"""python -m mulefarm: the mulefarm command, as the console script."""
from mulefarm._cli import main

if __name__ == "__main__":
    main()
