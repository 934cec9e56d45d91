"""Plumbing every ``wesog-async`` command shares: the exit-code table, errors to
exit statuses, connection options and client construction, the event-loop
runner and output helpers.

Conventions: data goes to stdout as JSON Lines; progress and messages go to
stderr. ``--quiet`` keeps stderr to errors (stdout is unchanged). The API key
comes from ``--api-key`` or ``$WESOG_API_KEY`` and is never printed.

The CLI sits on top of the library and uses only its public API
(``wesog_async`` and ``wesog_async.emulator``), with one exception listed in
:func:`to_json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import textwrap
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from wesog_async import (
    APIStatusError,
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    OperationNotFoundError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    TransportError,
    WesogClient,
    WesogError,
)

# The converter that writes models with their wire names
# (``Operation.errors[].id``, ISO-8601 timestamps).
from wesog_async import unstructure as _unstructure

_loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
try:
    import uvloop
except ImportError:  # the optional ``speedups`` extra
    _loop_factory = None
else:
    _loop_factory = uvloop.new_event_loop

T = TypeVar("T")

# The public configuration contract of WesogClient (documented in the README);
# tests check these against the library's own constants.
ENV_API_KEY: Final = "WESOG_API_KEY"
ENV_BASE_URL: Final = "WESOG_BASE_URL"
DEFAULT_BASE_URL: Final = "https://api.wesog.com"
WRITE_LANGS: Final = ("en", "es", "fr", "pt", "ru")
SEARCH_LANGS: Final = ("en", "es", "ml")
SORT_ORDERS: Final = ("asc", "desc")
INPUT_FORMATS: Final = ("jsonl", "csv", "ids")

# -- exit codes --------------------------------------------------------------------

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONNECTION: Final = 3
EXIT_API_ERROR: Final = 4
EXIT_NOT_FOUND: Final = 5
EXIT_SERVER_ERROR: Final = 6
EXIT_INTERRUPTED: Final = 130

EXIT_CODES: Final[tuple[tuple[int, str], ...]] = (
    (EXIT_OK, "success"),
    (
        EXIT_FAILED,
        "partial failure: some records failed, were invalid, not sent or of unknown "
        "outcome; an operation finished with failed items or not before --timeout",
    ),
    (
        EXIT_USAGE,
        "usage or configuration error: bad arguments, unreadable input, no or rejected "
        "API key (401/403), refused base URL",
    ),
    (
        EXIT_CONNECTION,
        "connection failure: the API (or the job database of `job`/`worker`) could not be "
        "reached or did not answer",
    ),
    (EXIT_API_ERROR, "the API refused the request: another 4xx (400, 409, 413, 422, 429)"),
    (EXIT_NOT_FOUND, "not found (404): no such image or operation"),
    (EXIT_SERVER_ERROR, "server error (5xx after retries) or a response that does not parse"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)


def exit_code_epilog() -> str:
    """The exit-code table as plain text, for ``--help``."""
    rows = "\n".join(
        textwrap.fill(text, width=79, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7)
        for code, text in EXIT_CODES
    )
    return f"exit codes (every command):\n{rows}"


def exit_code_for(exc: BaseException) -> int:
    """The exit status for an error that stopped a command."""
    if isinstance(exc, UsageError | AuthenticationError | InvalidInputError):
        return EXIT_USAGE
    if isinstance(exc, NotFoundError | OperationNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, TransportError):
        return EXIT_CONNECTION
    if isinstance(exc, ServerError | ResponseValidationError):
        return EXIT_SERVER_ERROR
    if isinstance(exc, APIStatusError):
        return EXIT_API_ERROR
    # OperationFailedError, OperationTimeoutError, ClientClosedError, ...
    return EXIT_FAILED


class UsageError(Exception):
    """A problem with the command line or the configuration (exit status 2)."""


# -- output ------------------------------------------------------------------------


def err(message: str) -> None:
    """An error or a message the user asked for: always on stderr."""
    print(message, file=sys.stderr, flush=True)


def info(args: argparse.Namespace, message: str) -> None:
    """A message on stderr, left out with ``--quiet``."""
    if not getattr(args, "quiet", False):
        err(message)


def warn(args: argparse.Namespace, message: str) -> None:
    """A warning on stderr (left out with ``--quiet``)."""
    info(args, f"wesog-async {args.command}: warning: {message}")


def out(data: Any) -> None:
    """One JSON line on stdout."""
    print(json.dumps(data, ensure_ascii=False, default=str), flush=True)


def to_json(model: Any) -> dict[str, Any]:
    """A model as JSON-ready data with its wire names, ``None`` fields left out."""
    data = _unstructure(model)
    return {k: v for k, v in data.items() if v is not None}


def list_arg(values: list[str] | None) -> list[str] | None:
    """``--fields a,b --fields c`` → ``["a", "b", "c"]``."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


# -- running -----------------------------------------------------------------------


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed. Ctrl-C cancels it (so that its
    cleanup runs), then raises ``KeyboardInterrupt`` here."""
    with asyncio.Runner(loop_factory=_loop_factory) as runner:
        return runner.run(coro)


Command = Callable[[argparse.Namespace], int]


def guarded(command: Command) -> Command:
    """Turn the errors a command can meet into a message and an exit status
    (see :data:`EXIT_CODES`)."""

    def run(args: argparse.Namespace) -> int:
        name = f"wesog-async {args.command}"
        try:
            return command(args)
        except UsageError as exc:
            err(f"{name}: error: {exc}")
        except AuthenticationError as exc:
            err(f"{name}: authentication failed ({exc.status}): check --api-key or ${ENV_API_KEY}")
        except WesogError as exc:
            err(f"{name}: {exc}")
            return exit_code_for(exc)
        except KeyboardInterrupt:
            err("Interrupted.")
            return EXIT_INTERRUPTED
        return EXIT_USAGE

    return run


# -- parser ------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions and epilogs as written and shows each option's default
    (unless it is unset or empty, a flag, or the help already names it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default == ""
            or isinstance(default, bool)
            or default is argparse.SUPPRESS
            or isinstance(action, argparse._CountAction)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def add_connection(parser: argparse.ArgumentParser) -> None:
    """``--api-key``, ``--base-url``, ``--retries`` and ``--allow-insecure-http``."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--api-key", metavar="KEY", help=f"API key (default: ${ENV_API_KEY}; never printed)"
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API root (default: ${ENV_BASE_URL} or {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=5,
        metavar="N",
        help="retries of a request after a connection error, a 408, a 429 or a 5xx "
        "(0 turns them off)",
    )
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow a plain http:// base URL to a non-loopback host (sends the key in clear)",
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: errors only on stderr."""
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="nothing on stderr but errors (and --progress jsonl if asked for); stdout "
        "is unchanged",
    )


def add_logging(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` and ``--log-format`` (library logs on stderr)."""
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="library logs on stderr (retries, throttling, splits); -vv adds one line per request",
    )
    group.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="library log lines as text, or as one JSON object per line with the "
        "record's extra fields (json also turns the logs on)",
    )


def base_url_of(args: argparse.Namespace) -> str | None:
    return args.base_url or os.environ.get(ENV_BASE_URL) or None


def make_client(args: argparse.Namespace, **options: Any) -> WesogClient:
    """A client from the connection options; configuration errors become usage errors."""
    if args.retries < 0:
        raise UsageError("--retries must be at least 0")
    try:
        return WesogClient(
            api_key=args.api_key,
            base_url=args.base_url,
            allow_insecure_http=args.allow_insecure_http,
            retry=RetryPolicy(attempts=args.retries + 1),
            **options,
        )
    except ValueError as exc:
        url = base_url_of(args) or ""
        if urlsplit(url).scheme == "http" and not args.allow_insecure_http:
            host = urlsplit(url).hostname
            raise UsageError(
                f"refusing plain http:// to non-loopback host {host!r}: the API key would be "
                "sent unencrypted. Use https://, or pass --allow-insecure-http to send it "
                "anyway."
            ) from None
        raise UsageError(str(exc)) from None


__all__ = [
    "EXIT_CODES",
    "Command",
    "HelpFormatter",
    "UsageError",
    "add_connection",
    "add_logging",
    "add_quiet",
    "err",
    "exit_code_for",
    "guarded",
    "info",
    "list_arg",
    "make_client",
    "out",
    "run_loop",
    "to_json",
    "warn",
]
