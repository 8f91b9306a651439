"""``python -m assembly``: the ``houqin`` command."""

from assembly.cli import main

main()
