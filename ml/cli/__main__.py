"""`python -m ml.cli`: the same commands as `intentflow`."""

from ml.cli.main import app

app(prog_name="intentflow")
