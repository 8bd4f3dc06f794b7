"""``python -m uegan`` runs the command-line interface."""

from uegan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
