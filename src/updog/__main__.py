"""``python -m updog``: the same as the ``updog`` command."""

from updog.cli import main

main()
