"""`python -m capacity` runs the command line."""

from capacity.cli import run

run()
