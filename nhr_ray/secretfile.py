"""Secrets that live on the node, not in job metadata: API keys from a file the launcher copies.

A run's API backends look up a key (e.g. OPENAI_API_KEY) in the process environment first, then
in the secrets file named by the NHR_SECRETS_FILE environment variable of the node. That file holds
`KEY=value` lines (blank lines and `#` comments skipped, an optional `export ` prefix, one pair of
surrounding quotes stripped, nothing expanded). It must be a regular file that only its owner can
read or write (mode 600 or stricter): anything else is refused with the reason, because a key that
other users of the node can read is a key they have. Errors name the file and the line number,
never a value.

The same check guards Ray's token file (`private_file`), see runtime/cluster.py.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from pathlib import Path

ENV_VAR = "NHR_SECRETS_FILE"
MAX_BYTES = 64 * 1024  # a few keys; anything larger is not a secrets file
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SecretFileError(ValueError):
    """A secrets or token file that is missing, unreadable, shared with others or malformed."""


def private_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path once it is a regular file only its owner may read or write."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as e:
        raise SecretFileError(f"{what} {p} cannot be read ({e.strerror or type(e).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretFileError(f"{what} {p} is not a regular file")
    if st.st_mode & 0o077:
        raise SecretFileError(
            f"{what} {p} is readable or writable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"allow its owner only: chmod 600 {p}"
        )
    return p


def parse_env_text(text: str, where: str) -> dict[str, str]:
    """KEY=value lines into a dict; a malformed line is an error naming its number only."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("export "):
            s = s[len("export ") :].lstrip()
        key, sep, value = s.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.fullmatch(key):
            raise SecretFileError(f"{where}, line {n}: expected KEY=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


def read_secrets(path: str | os.PathLike) -> dict[str, str]:
    """The pairs of one secrets file, checked as `private_file` (re-read when the file changes)."""
    p = private_file(path, "secrets file")
    st = p.stat()
    if st.st_size > MAX_BYTES:
        raise SecretFileError(f"secrets file {p} is {st.st_size} bytes; a secrets file holds a few KEY=value lines")
    return dict(_parsed(str(p), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=8)
def _parsed(path: str, _mtime_ns: int, _size: int) -> tuple[tuple[str, str], ...]:
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError(f"secrets file {path} is not UTF-8 text") from None
    except OSError as e:
        raise SecretFileError(f"secrets file {path} cannot be read ({e.strerror or type(e).__name__})") from None
    return tuple(parse_env_text(text, f"secrets file {path}").items())


def secrets_path() -> Path | None:
    """The node's secrets file ($NHR_SECRETS_FILE), or None where none is configured."""
    v = os.environ.get(ENV_VAR, "").strip()
    return Path(v).expanduser() if v else None


def secret(name: str) -> str | None:
    """The value of secret `name`: the environment variable of that name, else the node's secrets
    file; None when neither has it. Raises SecretFileError for a configured file that is unsafe."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    path = secrets_path()
    if path is None:
        return None
    return read_secrets(path).get(name, "").strip() or None


def file_values(names: tuple[str, ...]) -> list[str]:
    """Values of `names` in the node's secrets file, for the redactor; [] when there is no usable
    file (a broken file is reported where a key is read, not while scrubbing a text)."""
    path = secrets_path()
    if path is None:
        return []
    try:
        found = read_secrets(path)
    except SecretFileError:
        return []
    return [v for n in names if (v := found.get(n, "").strip())]
