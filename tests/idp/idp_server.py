"""A test identity provider with a web front, for browser tests: it answers SP-initiated
sign-in (HTTP-Redirect binding in, HTTP-POST binding out) and offers IdP-initiated "tiles",
signing every response with signxml (see sign_response.py).

Usage: idp_server.py CONFIG.json. The config has: port, tlsCert, tlsKey (PEM files), keyPem,
certPem (signing), issuer, user ({nameId, attributes}) and sps: {name: {acs, audience}}.
Endpoints:
  GET /sso/NAME?SAMLRequest=...&RelayState=...   answers the AuthnRequest of SP NAME
  GET /tile/NAME[?RelayState=...]                IdP-initiated sign-in to SP NAME
The page it returns posts the response to the SP's ACS by itself, as IdPs do.
"""

import base64
import html
import json
import os
import ssl
import sys
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from lxml import etree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sign_response  # noqa: E402

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
CONFIG = json.load(open(sys.argv[1]))


def when(delta):
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def response_for(sp, in_response_to):
    spec = {
        "keyPem": CONFIG["keyPem"],
        "certPem": CONFIG["certPem"],
        "issuer": CONFIG["issuer"],
        "destination": sp["acs"],
        "recipient": sp["acs"],
        "audience": sp["audience"],
        "inResponseTo": in_response_to,
        "nameId": CONFIG["user"]["nameId"],
        "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "attributes": CONFIG["user"].get("attributes", {}),
        "sign": "assertion",
        "notBefore": when(timedelta(seconds=-30)),
        "notOnOrAfter": when(timedelta(minutes=5)),
        "assertionId": "_a" + uuid.uuid4().hex,
        "responseId": "_r" + uuid.uuid4().hex,
    }
    return sign_response.build(spec)


def post_form(acs, saml_response, relay_state):
    relay = ""
    if relay_state is not None:
        relay = f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
    return f"""<!doctype html><html><body onload="document.forms[0].submit()">
<form method="post" action="{html.escape(acs)}">
<input type="hidden" name="SAMLResponse" value="{saml_response}">{relay}
<noscript><button>Continue</button></noscript></form></body></html>"""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if len(parts) != 2 or parts[1] not in CONFIG["sps"]:
            return self.answer(404, "no such page")
        sp = CONFIG["sps"][parts[1]]
        if parts[0] == "sso":
            try:
                raw = zlib.decompress(base64.b64decode(query["SAMLRequest"]), -15)
                request = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
            except Exception:  # noqa: BLE001 - a test IdP answers bad input with 400
                return self.answer(400, "bad SAMLRequest")
            if request.tag != f"{{{SAMLP}}}AuthnRequest":
                return self.answer(400, "not an AuthnRequest")
            acs = request.get("AssertionConsumerServiceURL")
            if acs != sp["acs"]:
                return self.answer(400, "unexpected ACS URL")
            body = post_form(acs, response_for(sp, request.get("ID")), query.get("RelayState"))
            return self.answer(200, body)
        if parts[0] == "tile":
            return self.answer(200, post_form(sp["acs"], response_for(sp, None), query.get("RelayState")))
        return self.answer(404, "no such page")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", CONFIG["port"]), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CONFIG["tlsCert"], CONFIG["tlsKey"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
