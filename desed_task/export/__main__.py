"""``python -m desed_task.export``: see desed_task/export/cli.py."""

from desed_task.export.cli import main

if __name__ == "__main__":
    main()
