"""One webhook delivery: the JSON body, its signatures (retrainctl's own header over the body, and
the Standard Webhooks headers over id, timestamp and body, which make a captured delivery useless
after five minutes), credentials from the URL as HTTP basic auth, and the POST itself."""
import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..base.secrets import origin, read_secret, redact, split_credentials
from ..core.records import DEFAULT_EVENTS

SIGNATURE_HEADER = "X-Retrainctl-Signature-256"
STANDARD_SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class Webhook:
    url: str
    secret_env: str | None = None
    secret_file: str | None = None
    events: tuple[str, ...] = tuple(DEFAULT_EVENTS)

    @property
    def key(self) -> str:
        """Names the endpoint in notified.json without writing its URL (which may hold a token)."""
        return "webhook:" + hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """The endpoint as logs name it: never a credential, a path segment or a query that may be one."""
        return f"webhook {origin(self.url)}"

    def secret(self, where: str = "notify.webhooks") -> bytes | None:
        """The signing secret (None without one); ConfigError when it is set but cannot be had,
        so a config that promises signatures never sends unsigned requests."""
        return read_secret(self.secret_env, self.secret_file, where)


def signature(secret: bytes, body: bytes) -> str:
    """retrainctl's own header value for `body`: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def standard_key(secret: bytes) -> bytes:
    """The HMAC key of the Standard Webhooks signature: a `whsec_<base64>` secret is its decoded
    bytes (padded or not), as the specification and its libraries read it; any other secret is
    used as it is (a receiver's library then takes it as bytes, or as `whsec_` + base64 of them)."""
    text = secret.decode("utf-8", "replace")
    if text.startswith(STANDARD_SECRET_PREFIX):
        encoded = text[len(STANDARD_SECRET_PREFIX):].rstrip("=")
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except ValueError:
            pass
    return secret


def standard_signature(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` (Standard Webhooks)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(standard_key(secret), signed, hashlib.sha256).digest()).decode()


def payload(record: dict[str, Any], event: str) -> bytes:
    """The exact bytes POSTed: the record with its event name, as JSON."""
    return json.dumps({"event": event, **record}, sort_keys=True, default=str).encode()


def request_parts(hook: Webhook, record: dict[str, Any], event: str, secret: bytes | None,
                  user_agent: str, now: float | None = None) -> tuple[str, bytes, dict[str, str]]:
    """(URL without credentials, body, headers) of one delivery. `webhook-id` is the same for
    every retry of it, so a receiver can drop a repeat."""
    body = payload(record, event)
    msg_id = "msg_" + uuid.uuid4().hex
    timestamp = int(time.time() if now is None else now)
    headers = {"Content-Type": "application/json", "User-Agent": user_agent, "X-Retrainctl-Event": event,
               "X-Retrainctl-Delivery": msg_id, "webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret, body)
        headers["webhook-signature"] = standard_signature(secret, msg_id, timestamp, body)
    url, credentials = split_credentials(hook.url)  # sent as HTTP basic auth, as curl does
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    return url, body, headers


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """POST once: (HTTP status or None, what went wrong). Redirects are not followed: a POST
    turned into a GET by a redirect would be reported as delivered. What went wrong never
    repeats the URL (urllib's messages may)."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return None, _scrub(str(exc.reason), url)
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        return None, _scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, url)


def _scrub(text: str, url: str) -> str:
    return text.replace(url, redact(url)) if url else text
