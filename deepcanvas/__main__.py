"""``python -m deepcanvas detect photo.jpg``: the client's commands where only the client is installed."""

from deepcanvas.cli import client_cli

client_cli()
