"""`python -m promptguard` runs the `promptguard` command (same as the console script)."""

from promptguard.cli import main

main()
