"""``python -m deepcanvas detect photo.jpg``: the client's commands where only the client is installed."""

from deepcanvas.cli import client_cli
from deepcanvas.identity_cli import COMMANDS, identities_cli

client_cli.add_typer(identities_cli, name="identities")
for _name, _command in COMMANDS.items():
    client_cli.command(_name)(_command)

client_cli()
