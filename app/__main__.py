"""``python -m app`` runs the CLI."""

from app.cli import main

if __name__ == "__main__":  # not when a spawned child (the store writer) re-imports the parent's main module
    main()
