"""Read run parameters from a TOML or JSON file (``--config FILE``).

A long list of flags is hard to review, share and keep with a data set; a file is not.
Keys are :class:`selfinstruct.run.config.RunConfig` field names (``num_instructions``), or
the flag spelling without the dashes in front (``num-instructions``). The file only
supplies values: the caller layers them over the defaults and a resumed run's manifest,
and under the flags given on the command line (see ``cli.options.config_from_args``).

Every problem is a :class:`UserError` that names the file and, where the parser or a
search of the text can tell, the line: a missing file, a syntax error, an unknown key
(with the closest known key), a value of the wrong type. Range checks stay in
``RunConfig.validate``; :meth:`ConfigFile.blame` puts the file and line on its errors.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import check_limits, limits_error
from selfinstruct.run.config import RunConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# Fields that name files: a relative path in a config file is relative to that file, so a
# config file and the seeds beside it work from any working directory.
PATH_FIELDS = ("seeds", "prompts")
# Fields that hold comma-joined file paths; each relative one is relative to the file too.
PATH_LIST_FIELDS = ("decontaminate",)

_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a number",
               str: "a string"}


@dataclass
class ConfigFile:
    path: Path
    values: dict = field(default_factory=dict)  # field name -> value of the field's type
    lines: dict = field(default_factory=dict)   # field name -> line number, where found

    def where(self, name: str | None = None) -> str:
        line = self.lines.get(name) if name else None
        return f"{self.path}:{line}" if line else str(self.path)

    def blame(self, error: UserError, given_as_flags: set[str]) -> UserError:
        """Name the file and line in a validation error caused by one of its values. An
        error about a flag's value is returned unchanged; one about a default or manifest
        value (a bound set by another field) says the file's options were in play."""
        name = error.field
        if name in given_as_flags or not self.values:
            return error
        message = str(error)
        if name is None or name not in self.values:  # a bound set by another field, from the file
            return UserError(f"{message} (with the options in {self.path})")
        flag = "--" + name.replace("_", "-")
        if message.startswith(flag + ":"):
            message = message[len(flag) + 1:].lstrip()
        return UserError(f"{self.where(name)}: {name}: {message}")


def read_config_file(path: str | Path) -> ConfigFile:
    """Parse and type-check ``path`` (``.toml`` or ``.json``)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "file not found"
        raise UserError(f"--config: {what}: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise UserError(f"--config: {path}: use a .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    data = _parse_toml(path, text) if suffix == ".toml" else _parse_json(path, text)
    config_file = ConfigFile(path)
    for key, value in data.items():
        name = key.replace("-", "_")
        line = _line_of(text, key, json_syntax=suffix == ".json")
        where = f"{path}:{line}" if line else str(path)
        if name not in _FIELD_TYPES:
            raise UserError(f"{where}: unknown key '{key}'{_suggestion(key)}")
        if name in config_file.values:
            raise UserError(f"{where}: '{key}' is given twice (as "
                            f"'{name}' and '{name.replace('_', '-')}')")
        config_file.values[name] = _checked(name, value, where, path.parent)
        config_file.lines[name] = line
    return config_file


def _parse_toml(path: Path, text: str) -> dict:
    try:
        data = check_limits(tomllib.loads(text), str(path))
    except RecursionError as exc:
        raise (limits_error(str(path), exc)
               or UserError(f"{path}: not valid TOML: {exc}")) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line 3, column 7)" (or "at end of document") in the message
        message = str(exc)
        found = re.search(r"\(at line (\d+), column \d+\)$", message)
        if found:
            message = message[: found.start()].rstrip()
            raise UserError(f"{path}:{found.group(1)}: not valid TOML: {message} "
                            f"({found.group(0)[4:-1]})") from None
        raise UserError(f"{path}: not valid TOML: {message}") from None
    except ValueError as exc:  # an integer longer than Python converts
        raise (limits_error(str(path), exc)
               or UserError(f"{path}: not valid TOML: {exc}")) from None
    assert isinstance(data, dict)  # tomllib gives a table
    return data


def _parse_json(path: Path, text: str) -> dict:
    try:
        data = check_limits(json.loads(text), str(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg} "
                        f"(line {exc.lineno}, column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:
        raise (limits_error(str(path), exc)
               or UserError(f"{path}: not valid JSON: {exc}")) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: must hold one JSON object of option names and values, "
                        f"not {_describe(data)}")
    return data


def _field_types() -> dict[str, type]:
    """Each field's type; ``str | None`` fields are listed as ``str`` (None: the default)."""
    hints = typing.get_type_hints(RunConfig)
    out = {}
    for f in fields(RunConfig):
        kind = hints[f.name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        out[f.name] = args[0] if args else kind
    return out


_FIELD_TYPES = _field_types()
_NULLABLE = {f.name for f in fields(RunConfig) if f.default is None}


def _checked(name: str, value, where: str, base_dir: Path):
    kind = _FIELD_TYPES[name]
    if value is None and name in _NULLABLE:  # JSON null: the default
        return None
    if kind not in _TYPE_NAMES:  # a field type this reader does not know: validate() checks
        return value
    # bool is a subclass of int in Python, but `num_instructions = true` is a mistake
    is_bool = isinstance(value, bool)
    fits = ((isinstance(value, kind) and (kind is bool or not is_bool))
            or (kind is float and isinstance(value, int) and not is_bool))
    if not fits:
        raise UserError(f"{where}: {name}: expected {_TYPE_NAMES[kind]}, "
                        f"got {_describe(value)}")
    if kind is float:
        value = float(value)
    if name in PATH_FIELDS and not Path(value).expanduser().is_absolute():
        value = str(base_dir / Path(value).expanduser())
    if name in PATH_LIST_FIELDS:
        value = ",".join(p if Path(p).expanduser().is_absolute()
                         else str(base_dir / Path(p).expanduser())
                         for p in value.split(",") if p)
    return value


def _describe(value) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a table (object)"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return type(value).__name__


def _suggestion(key: str) -> str:
    spelled_with_dashes = "-" in key
    known = [name.replace("_", "-") if spelled_with_dashes else name for name in _FIELD_TYPES]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _line_of(text: str, key: str, json_syntax: bool) -> int | None:
    """The line that sets ``key``, found by a search of the text (neither parser reports
    where a key is); None when the search cannot tell."""
    if json_syntax:
        pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    else:
        spellings = "|".join(re.escape(k) for k in (key, json.dumps(key), f"'{key}'"))
        pattern = re.compile(rf"^\s*(?:(?:{spellings})\s*=|\[+\s*(?:{spellings})\s*[.\]])")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line):
            return number
    return None
