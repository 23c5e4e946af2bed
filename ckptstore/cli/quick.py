"""The read commands' plain command lines, parsed without Typer's value conversion.

Typer 0.29 converts every parameter's value through a pydantic ``TypeAdapter``: importing
pydantic and building the adapters costs ~0.07 s of CPU on every command, a third of a read
command's time. The read commands (registered with ``command(..., quick=True)``) are called
here instead when their command line is a plain one, parsed against the Click objects that
Typer builds from the very same definitions (``typer.main.get_command``): the option names,
flags, repeatable options and arguments, and the defaults, types and callbacks declared on the
command function. So there is one definition of each option, and no second parser to keep equal.

Anything else is left to Typer, which parses and words it as always: an option or name this
module does not know, ``--``, ``--help``, an option given twice, a flag with ``=``, a value that
is not plainly a whole number where one is expected, a value a callback refuses, shell
completion, ``CKPTSTORE_QUICK=0``. ``tests/cli/test_one_argv_layer.py`` runs a table of command
lines both ways and compares status, stdout and stderr.
"""

import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import typer
import typer.main

from ..location import default_location
from .app import QUICK_COMMANDS, StoreLocation, app

_DIGITS = re.compile(r"[0-9]+")


class Declined(Exception):
    """Not a plain command line of a read command: Typer takes it."""


def run(args: Sequence[str]) -> bool:
    """Run ``args`` (the arguments after ``ckptstore``) if it is a read command's plain command
    line, and return True; False (having done nothing) to leave it to Typer."""
    if os.environ.get("CKPTSTORE_QUICK") == "0" or "_CKPTSTORE_COMPLETE" in os.environ:
        return False
    try:
        ctx, function, values = _parse(list(args))
    except Exception:  # Declined, or any surprise while parsing: Typer parses it, as always
        return False
    with ctx:
        ctx.invoke(function, ctx, **values)
    return True


def _parse(args: list[str]) -> tuple[typer.Context, Callable[..., Any], dict[str, Any]]:
    root = typer.main.get_command(app)
    options, rest = _options(root, args, interspersed=False)
    store = _from_env(options, "store", "CKPTSTORE_URI")
    where = StoreLocation(default_location() if store is None else store, _from_env(options, "root", "CKPTSTORE_ROOT"))
    ctx = typer.Context(root, info_name="ckptstore", obj=where)
    command: Any = root
    path: list[str] = []
    while isinstance(command, typer.core.TyperGroup):
        if not rest or rest[0] not in command.commands:
            raise Declined
        path.append(rest[0])
        command = command.commands[rest[0]]
        ctx = typer.Context(command, parent=ctx, info_name=rest[0])
        rest = rest[1:]
    function = QUICK_COMMANDS.get(tuple(path))
    if function is None:
        raise Declined
    given, positional = _options(command, rest, interspersed=True)
    return ctx, function, _values(function, command, given, positional)


def _from_env(options: dict[str, Any], name: str, envvar: str) -> str | None:
    # As Click reads them: the option, else its environment variable if not empty.
    return options[name] if name in options else (os.environ.get(envvar) or None)


def _options(command: Any, args: list[str], *, interspersed: bool) -> tuple[dict[str, Any], list[str]]:
    """The options of ``command`` found in ``args`` ({parameter name: text, True/False for a
    flag, a list for a repeatable option}) and the other arguments. Options come before the
    arguments, or anywhere with ``interspersed`` (a command, as Click allows)."""
    spellings: dict[str, tuple[Any, bool]] = {}
    for param in command.params:
        if param.param_type_name == "option":
            spellings.update({opt: (param, True) for opt in param.opts})
            spellings.update({opt: (param, False) for opt in param.secondary_opts})
    found: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            if not interspersed:
                return found, args[i:]
            positional.append(arg)
            i += 1
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in spellings:
            raise Declined  # --help, --, an unknown or abbreviated option, -mVALUE: Typer's
        param, on = spellings[name]
        if param.name in found and not param.multiple:
            raise Declined  # given twice (Click takes the last): Typer's
        if param.is_flag:
            if eq:
                raise Declined
            found[param.name] = on
            i += 1
            continue
        if not eq:
            if i + 1 == len(args):
                raise Declined  # a missing value: Typer words it
            value = args[i + 1]
        i += 1 if eq else 2
        if param.multiple:
            found.setdefault(param.name, []).append(value)
        else:
            found[param.name] = value
    return found, positional


def _values(function: Callable[..., Any], command: Any, given: dict[str, Any], positional: list[str]) -> dict[str, Any]:
    """The keyword arguments of ``function`` for this command line: each value converted to the
    type its annotation declares and passed through its callback, as Typer does; defaults for
    what is not given."""
    hints = typing.get_type_hints(function, include_extras=True)
    signature = inspect.signature(function)
    values: dict[str, Any] = {}
    for param in command.params:
        kind, info = _declared(hints[param.name])
        if param.param_type_name == "argument":
            if param.nargs == -1:
                text: Any = list(positional)
                positional.clear()
            elif positional:
                text = positional.pop(0)
            else:
                text = None
            if text in (None, []) and param.required:
                raise Declined  # a missing argument: Typer words it
        else:
            text = given.get(param.name)
            if text in (None, []) and param.required:
                raise Declined  # a missing required option (restore --to, import --run): Typer words it
        if text is None or text == []:
            value = signature.parameters[param.name].default
            value = None if value is inspect.Parameter.empty else value
        elif isinstance(text, list):
            value = [_convert(kind, t) for t in text]
        else:
            value = _convert(kind, text)
        callback = getattr(info, "callback", None)
        if callback is not None:
            try:
                value = callback(value)
            except Exception:
                raise Declined from None  # refused: Typer words it
        values[param.name] = value
    if positional:
        raise Declined  # extra arguments
    return values


def _declared(hint: Any) -> tuple[type, Any]:
    """(scalar type, typer.Option/Argument info) of an ``Annotated[T | None, typer.Option(...)]``
    or ``Annotated[list[T] | None, ...]`` parameter."""
    info = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, info = typing.get_args(hint)[0], typing.get_args(hint)[1]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    if typing.get_origin(hint) is list:
        hint = typing.get_args(hint)[0]
    return hint, info


def _convert(kind: type, text: Any) -> Any:
    if isinstance(text, bool):
        return text
    if kind is int:
        if not _DIGITS.fullmatch(text):
            raise Declined  # a sign, spaces, underscores, other digits: pydantic's rules, Typer's
        try:
            return int(text)
        except ValueError:
            raise Declined from None  # more than Python's 4,300 digits: Typer words it
    if kind is str:
        return text
    raise Declined
