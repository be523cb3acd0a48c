"""``python -m deepcanvas detect photo.jpg``: the client's commands where only the client is installed.

The ``deepcanvas`` script (``app.cli.main``) runs ``main`` too when the service's packages are absent.
"""

from deepcanvas.cli import client_cli
from deepcanvas.identity_cli import COMMANDS, identities_cli

client_cli.add_typer(identities_cli, name="identities")
for _name, _command in COMMANDS.items():
    client_cli.command(_name)(_command)


def main() -> None:
    client_cli()


if __name__ == "__main__":
    main()
