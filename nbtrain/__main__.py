"""`python -m nbtrain` runs the command line, as the `nbtrain` script does."""
from .cli import app

app(prog_name="nbtrain")
