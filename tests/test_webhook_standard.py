"""Webhook deliveries against the Standard Webhooks verifier (the `standardwebhooks` package) and
the receiver code docs/report-and-notifications.md documents: real deliveries of the installed
command verify with a `whsec_` secret and with a plain one; a changed body, a changed timestamp
or a timestamp more than 5 minutes away is refused."""
import base64
import json
import re
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from conftest import REPO, Project
from retrainctl.publish import webhooks
from test_webhooks import Endpoint

WHSEC = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()   # the scheme's form: 32 bytes, base64
PLAIN = "plain-signing-secret-42"                                     # any other secret: its bytes are the key


def documented_receivers():
    """The Python blocks of the docs' Webhooks section, run: the receiver functions they define."""
    text = (REPO / "docs" / "report-and-notifications.md").read_text()
    section = text[text.index("\n## Webhooks\n"):text.index("\n### Events\n")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the docs show the library receiver and the hand-written one"
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/report-and-notifications.md", "exec"), namespace)
    return namespace


DOCS = documented_receivers()


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory):
    """What a real receiver got from `retrainctl pause iris` with two endpoints: one signing with a
    `whsec_` secret from the environment, one with a plain secret from a file. {path: (headers, body)}."""
    endpoint = Endpoint(200)
    try:
        project = Project(tmp_path_factory.mktemp("standard") / "proj")
        (project.root / "etc" / "hook.secret").write_text(PLAIN + "\n")
        project.config["notify"] = {"webhooks": [
            {"url": endpoint.url + "/whsec", "secret_env": "HOOK_SECRET", "events": ["paused"]},
            {"url": endpoint.url + "/plain", "secret_file": "etc/hook.secret", "events": ["paused"]}]}
        project.write_config()
        done = project.run("pause", "iris", env={"HOOK_SECRET": WHSEC})
        assert (done.returncode, done.stdout) == (0, "iris: paused\n"), done.stderr
        assert done.stderr.count("paused event for iris delivered (HTTP 200)") == 2, done.stderr
    finally:
        endpoint.close()
    # header names as a receiver must read them: without regard to case (urllib sends `Webhook-Id`)
    got = {path: ({k.lower(): v for k, v in headers.items()}, body) for headers, body, path in endpoint.requests}
    assert sorted(got) == ["/hook/plain", "/hook/whsec"]
    return got


def test_a_delivery_verifies_with_the_standard_webhooks_library(deliveries):
    for path, secret, receivers in (("/hook/whsec", WHSEC.encode(), [WHSEC]),
                                    ("/hook/plain", PLAIN.encode(),
                                     [PLAIN.encode(), "whsec_" + base64.b64encode(PLAIN.encode()).decode()])):
        headers, body = deliveries[path]
        assert headers["webhook-id"] == headers["x-retrainctl-delivery"] and headers["webhook-id"].startswith("msg_")
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 120
        assert headers["webhook-signature"].startswith("v1,")
        for key in receivers:
            assert Webhook(key).verify(body, headers) == json.loads(body)
            assert DOCS["verified_by_library"](key, body, headers) is True
        assert DOCS["verified_standard"](secret, body, headers) is True
        assert DOCS["verified"](secret, body, headers["x-retrainctl-signature-256"]) is True
        assert json.loads(body)["event"] == "paused" and json.loads(body)["model_name"] == "iris"
    # each endpoint's signature is its own
    headers, body = deliveries["/hook/plain"]
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(WHSEC).verify(body, headers)
    assert DOCS["verified_standard"](WHSEC.encode(), body, headers) is False


def test_a_changed_body_or_timestamp_is_refused(deliveries):
    headers, body = deliveries["/hook/whsec"]
    tampered = body.replace(b'"paused"', b'"resumed"', 1)
    assert tampered != body
    moved = dict(headers, **{"webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)})
    for changed_body, changed_headers in ((tampered, headers), (body, moved)):
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(WHSEC).verify(changed_body, changed_headers)
        assert DOCS["verified_by_library"](WHSEC, changed_body, changed_headers) is False
        assert DOCS["verified_standard"](WHSEC.encode(), changed_body, changed_headers) is False
        assert DOCS["verified"](WHSEC.encode(), changed_body, changed_headers["x-retrainctl-signature-256"]) is (
            changed_body == body)  # the body signature alone does not see the timestamp


def test_a_replay_after_five_minutes_is_refused(deliveries):
    headers, body = deliveries["/hook/whsec"]
    sent = int(headers["webhook-timestamp"])
    assert DOCS["verified_standard"](WHSEC.encode(), body, headers, now=sent + 299) is True
    assert DOCS["verified_standard"](WHSEC.encode(), body, headers, now=sent + 301) is False
    assert DOCS["verified_standard"](WHSEC.encode(), body, headers, now=sent - 301) is False
    # the library reads the clock: deliveries signed by retrainctl as if sent earlier or later
    hook = webhooks.Webhook("http://127.0.0.1:9/hook")
    record = json.loads(body)
    for offset, verdict in ((-200, None), (-301, "too old"), (301, "too new")):
        _, signed_body, signed = webhooks.request_parts(hook, record, "paused", WHSEC.encode(), "test",
                                                        now=time.time() + offset)
        if verdict is None:
            assert Webhook(WHSEC).verify(signed_body, signed) == record
            assert DOCS["verified_by_library"](WHSEC, signed_body, signed) is True
        else:
            with pytest.raises(WebhookVerificationError, match=f"Message timestamp {verdict}"):
                Webhook(WHSEC).verify(signed_body, signed)
            assert DOCS["verified_by_library"](WHSEC, signed_body, signed) is False
            assert DOCS["verified_standard"](WHSEC.encode(), signed_body, signed) is False


@pytest.mark.parametrize("secret", [
    "whsec_" + base64.b64encode(b"\x00\xffsixteen bytes!!").decode().rstrip("="),  # unpadded, as some tools write it
    "whsec_" + base64.b64encode(b"twenty-four bytes of key").decode(),
])
def test_whsec_secrets_padded_or_not_are_read_as_the_library_reads_them(secret):
    _, body, headers = webhooks.request_parts(webhooks.Webhook("http://127.0.0.1:9/hook"), {"model_name": "iris"},
                                              "paused", secret.encode(), "test")
    assert Webhook(secret).verify(body, headers) == {"event": "paused", "model_name": "iris"}
    assert DOCS["verified_standard"](secret.encode(), body, headers) is True
