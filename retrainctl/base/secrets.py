"""Secrets the config points at (never holds): one reader for every password and signing key,
and URLs made safe to print."""
import os

from .errors import ConfigError


def read_secret(env: str | None, path: str | None, where: str, env_key: str = "secret_env",
                file_key: str = "secret_file") -> bytes | None:
    """The secret named by an environment variable (`env`, the config's `env_key`) or held in a
    file (`path`, its `file_key`), as bytes; None when neither is set. One rule everywhere:
    surrounding white space is not part of it (editors and `echo` add a line break), and an empty
    secret is refused. ConfigError names `where` (the config section) and the variable or file,
    never the value."""
    if env:
        value = os.environ.get(env)
        secret = (value or "").encode().strip()
        if not secret:
            raise ConfigError(f"{where}: {env_key} {env} is not set or empty")
        return secret
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            secret = fh.read().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {file_key} of {where}: {exc.strerror or exc}") from None
    if not secret:
        raise ConfigError(f"{path}: the {file_key} of {where} is empty")
    return secret


def origin(url: str) -> str:
    """scheme://host:port of a URL: what names an endpoint without anything that may be a secret."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def redact(url: str) -> str:
    """A URL as logs, messages and `config` may show it: its origin, with `/***` where it had a
    path and `?***` where it had a query. A `user:password@`, a path (`/hooks/T000/B000/XXXX`,
    `/<ping uuid>`) and a query (`?token=...`) may each be the credential."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    path = "/***" if parts.path.strip("/") else ""
    return origin(url) + path + ("?***" if parts.query else "")
