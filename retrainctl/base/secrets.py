"""Secrets the config points at (never holds): one reader for every password and signing key,
and URLs made safe to print."""
import os
import re

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


def redact(url: str, host: bool = True) -> str:
    """A URL as logs, messages and `config` may show it: its origin, with `/***` where it had a
    path and `?***` where it had a query. A `user:password@`, a path (`/hooks/T000/B000/XXXX`,
    `/<ping uuid>`) and a query (`?token=...`) may each be the credential. A URL without a host
    (`sqlite:////var/lib/x.db`, `file:///srv/mlruns`) keeps its path, a local file's name; text
    that is not a URL (a plain path) is left as it is. `host=False`: `scheme://***`, for URLs
    whose host may itself be a token (apprise's `slack://T000/...`, `tgram://<bot token>/...`)."""
    from urllib.parse import urlsplit

    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if not host:
        return f"{parts.scheme}://***"
    query = "?***" if parts.query or parts.fragment else ""
    if not parts.netloc:
        return f"{parts.scheme}://{parts.path}{query}"
    path = "/***" if parts.path.strip("/") else ""
    return origin(url) + path + query


# A URL inside free text (an argv item such as `--url=https://...`, an estimator parameter).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")


def redact_text(text: str, host: bool = True) -> str:
    """`text` with every URL in it redacted as redact() does."""
    return _URL.sub(lambda m: redact(m[0], host), text)


def scrub(text: str, url: str) -> str:
    """A library's message about `url` (MLflow's errors repeat the URL whole, and urllib3's its
    path and query) without what may be its secrets: every URL in it redacted, and the password,
    path and query of `url` replaced by `***` wherever else they appear."""
    from urllib.parse import unquote, urlsplit

    text = redact_text(text)
    if "://" not in url:
        return text
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return text
    path = parts.path.rstrip("/") if parts.netloc else ""
    pieces = {p for piece in (password, path, parts.query, parts.fragment) if piece for p in (piece, unquote(piece))}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "/***" if piece.startswith("/") else "***")
    return text


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without `user:password@`, (user, password) or None), as curl and Prometheus'
    clients read a URL: urllib would take the userinfo for part of the host name."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), (unquote(parts.username or ""), unquote(parts.password or ""))
