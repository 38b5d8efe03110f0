"""``python -m containerlease_tui`` is the ``containerlease`` command."""

from containerlease_tui.cli import main

if __name__ == "__main__":
    main()
