"""`nfcpay`: one CLI over every component. Errors become one line on stderr and an exit code
(2 for bad input of any kind, 1 for anything unexpected); never a traceback unless
NFCPAY_DEBUG=1."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer

from acquiring import cli as acquiring_cli
from card_applet_sim import cli as card_cli
from card_applet_sim.domain.errors import CardSimError
from card_applet_sim.domain.issuance import IssuanceError
from clearing import cli as clearing_cli
from nfcpay import demo as demo_module
from ota import cli as ota_cli
from paycore.errors import PaycoreError
from pos_terminal import cli as pos_cli

app = typer.Typer(
    name="nfcpay",
    help="Open NFC proximity-payment and POS simulation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(card_cli.keys_app, name="keys")
app.add_typer(card_cli.card_app, name="card")
app.add_typer(card_cli.psam_app, name="psam")
app.add_typer(acquiring_cli.app, name="host")
app.add_typer(ota_cli.app, name="ota")
app.add_typer(clearing_cli.app, name="clearing")
app.add_typer(pos_cli.app, name="pos")


@app.command("demo")
def demo(
    keep: bool = typer.Option(False, "--keep", help="Keep the temp folder with the images."),
) -> None:
    """Run the whole chain on embedded defaults and print what happened."""
    demo_module.run(keep=keep)


BAD_INPUT = (
    PaycoreError,
    CardSimError,
    IssuanceError,
    card_cli.CliInputError,
    acquiring_cli.HostCliError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    PermissionError,
)


def _base(cls: type[BaseException], name: str) -> type[Exception]:
    """The click (or Typer's vendored click) exception base class called ``name``."""
    for base in cls.__mro__:
        if base.__name__ == name and issubclass(base, Exception):
            return base
    raise RuntimeError(f"no {name} above {cls.__name__}")


_UsageError = _base(typer.BadParameter, "UsageError")
_ClickException = _base(typer.BadParameter, "ClickException")


def _fail(message: str, code: int) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"nfcpay: error: {first_line}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None, prog_name="nfcpay", standalone_mode=False
        )
    except _UsageError as exc:
        ctx: Any = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 2  # `nfcpay` or `nfcpay card` alone: Typer has printed the help
        where = f"{ctx.command_path}: " if ctx is not None else ""
        return _fail(f"{where}{getattr(exc, 'format_message', exc.__str__)()}", 2)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return _fail("aborted", 130)
    except _ClickException as exc:
        return _fail(str(getattr(exc, "format_message", exc.__str__)()), 1)
    except BAD_INPUT as exc:
        return _fail(str(exc), 2)
    except Exception as exc:
        if os.environ.get("NFCPAY_DEBUG") == "1":
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc}", 1)
    return result if isinstance(result, int) else 0


def entry() -> None:
    sys.exit(main())
