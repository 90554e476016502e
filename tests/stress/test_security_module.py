"""Security properties of mod_coupecircuit in a real Apache (prefork +
mod_php), with the real coupecircuitd:

- the health handler with CoupeCircuitHealthToken answers 401 with
  "WWW-Authenticate: Bearer realm=..." without the right bearer token, 200
  with it, and the token appears in no log (error log at trace8 for the
  module, access log);
- the status handler obeys Apache's access control (a Require that does not
  match the client gives 403), and the shipped conf.d/coupecircuit.conf
  guards /coupecircuit/status with "Require local";
- the status page and the health answer hold counts only: no session id,
  no session content.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from harness import APACHE_MODULE_DIR, wait_for

SOURCE_DIR = Path(__file__).resolve().parents[2]
HEALTH = "/coupecircuit/health"
STATUS = "/coupecircuit/status"


def security_lines(token: str, status_require: str) -> list[str]:
    return [
        f'LoadModule authz_host_module "{APACHE_MODULE_DIR}/mod_authz_host.so"',
        "LogLevel warn coupecircuit:trace8",
        f'<Location "{HEALTH}">',
        "    SetHandler coupecircuit-health",
        "    Require all granted",
        f"    CoupeCircuitHealthToken {token}",
        "</Location>",
        f'<Location "{STATUS}">',
        "    SetHandler coupecircuit-status",
        f"    {status_require}",
        "</Location>",
    ]


def header(response, name: str) -> str | None:
    return response.header(name)


def test_health_token_401_and_never_logged(helper, make_apache, module_so, logs):
    token = "cc-" + secrets.token_urlsafe(24)
    apache = make_apache("prefork", helper, with_module=True, server_lines=security_lines(token, "Require local"))
    client = apache.client()

    for headers in ({}, {"Authorization": f"Bearer {token[:-1]}"}, {"Authorization": f"Bearer {token}x"},
                    {"Authorization": f"Basic {token}"}, {"Authorization": f"Bearer{token}"},
                    {"Authorization": "Bearer "}, {"Authorization": f"Bearer {token.upper()}"}):
        reply = client.request(HEALTH, headers=headers)
        assert reply.status == 401, (headers, reply.status, reply.body)
        assert header(reply, "WWW-Authenticate") == 'Bearer realm="coupecircuit"', reply.headers
        assert token.encode() not in reply.body

    for value in (f"Bearer {token}", f"bearer {token}", f"BEARER   {token} "):
        reply = client.request(HEALTH, headers={"Authorization": value})
        assert reply.status == 200, (value, reply.status, reply.body)
        assert reply.body == b"UP\n"
        assert header(reply, "WWW-Authenticate") is None

    apache.stop()  # flush every log
    for log in (apache.error_log, apache.access_log):
        text = log.read_text(errors="replace") if log.exists() else ""
        assert token not in text, f"the health token is in {log}"
        assert token[3:15] not in text, f"part of the health token is in {log}"
    # The access log did record the requests (so the check above means something).
    assert apache.access_log.read_text().count(HEALTH) == 10


def test_status_page_obeys_require(helper, make_apache, module_so, logs):
    logs.allow(r"AH01630")  # "client denied by server configuration": the point of this test
    token = "cc-" + secrets.token_urlsafe(24)
    denied = make_apache("prefork", helper, with_module=True, name="apache-denied",
                         server_lines=security_lines(token, "Require ip 192.0.2.1"))
    reply = denied.client().request(STATUS + "?json")
    assert reply.status == 403, (reply.status, reply.body)
    assert b"sessions" not in reply.body
    denied.stop()

    local = make_apache("prefork", helper, with_module=True, name="apache-local",
                        server_lines=security_lines(token, "Require local"))
    reply = local.client().request(STATUS + "?json")
    assert reply.status == 200, (reply.status, reply.body)
    assert header(reply, "Cache-Control") == "no-store"


def test_shipped_conf_guards_the_status_page_with_require_local():
    text = (SOURCE_DIR / "conf.d" / "coupecircuit.conf").read_text()
    active = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    block = re.search(r'<Location\s+"?/coupecircuit/status"?>(.*?)</Location>', active, re.S)
    assert block, "conf.d/coupecircuit.conf serves no /coupecircuit/status"
    assert "SetHandler coupecircuit-status" in block.group(1)
    requires = [line.strip() for line in block.group(1).splitlines() if line.strip().startswith("Require")]
    assert requires == ["Require local"], requires
    # The health handler ships commented out: nothing is exposed until configured.
    assert "SetHandler coupecircuit-health" not in active


def test_status_and_health_hold_no_session_id_or_content(helper, make_apache, module_so, logs):
    marker = "CCSECRET" + secrets.token_hex(12)
    ids = []
    for kind in ("authenticated", "authenticated", "anonymous"):
        path = helper.session(kind)
        ids.append(path.name[len("sess_"):])
        with open(path, "a") as handle:  # the marker in the session's own data
            handle.write(f'note|s:{len(marker)}:"{marker}";')
    wait_for(helper.status, lambda v: v[1]["sessions"]["active"]["authenticated"] == 2, 3.0, "sessions counted")

    token = "cc-" + secrets.token_urlsafe(24)
    apache = make_apache("prefork", helper, with_module=True, server_lines=security_lines(token, "Require local"))
    client = apache.client()
    bodies = [client.request(STATUS + query).body for query in ("", "?json", "?prometheus")]
    bodies.append(client.request(HEALTH, headers={"Authorization": f"Bearer {token}"}).body)
    assert b"2" in bodies[1]  # the counts are there
    for body in bodies:
        assert marker.encode() not in body
        assert b"sess_" not in body
        for session_id in ids:
            assert session_id.encode() not in body
