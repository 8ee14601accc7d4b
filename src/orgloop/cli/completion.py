"""``orgloop completion bash|zsh|fish`` and ``orgloop version``."""
from __future__ import annotations

import click

__all__ = ["completion", "version_cmd"]

_TWIN_ROOMS = ("wal", "queues")
_SHELLS = ("bash", "zsh", "fish")
_INSTALL = {"bash": 'eval "$(orgloop completion bash)"   # in ~/.bashrc',
            "zsh": 'eval "$(orgloop completion zsh)"    # in ~/.zshrc',
            "fish": "orgloop completion fish > ~/.config/fish/completions/orgloop.fish"}


@click.command()
@click.argument("shell", type=click.Choice(_SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    bash: eval "$(orgloop completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(orgloop completion zsh)"    (in ~/.zshrc)
    fish: orgloop completion fish > ~/.config/fish/completions/orgloop.fish
    """
    from click.shell_completion import get_completion_class

    from orgloop.cli import main

    cls = get_completion_class(shell)
    assert cls is not None                     # click ships all three
    click.echo(cls(main, {}, "orgloop", "_ORGLOOP_COMPLETE").source())


def _backends() -> str:
    """Which implementation of each twin pair is live, e.g. ``wal=compiled queues=compiled``."""
    from importlib import import_module

    parts = []
    for room in _TWIN_ROOMS:
        try:
            parts.append(f"{room}={import_module('orgloop.' + room).implementation()}")
        except ImportError:
            parts.append(f"{room}=missing")
    return " ".join(parts)


@click.command("version")
def version_cmd() -> None:
    """Print the version and which implementations (compiled or pure) are live."""
    from orgloop import __version__

    click.echo(f"orgloop {__version__} ({_backends()})")
