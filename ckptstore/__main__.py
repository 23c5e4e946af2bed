"""``python -m ckptstore``: the ``ckptstore`` command."""

from .cli import main

main()
