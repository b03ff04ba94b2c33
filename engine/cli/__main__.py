"""``python -m engine.cli``: the ecomscale command line."""

from engine.cli import main

main()
