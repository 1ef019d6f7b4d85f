"""A test identity provider with a web front, for browser tests: it answers SP-initiated
sign-in (HTTP-Redirect binding in, HTTP-POST binding out) and offers IdP-initiated "tiles",
signing every response with signxml (see sign_response.py). With a password in its config it
keeps its own session (a cookie): the first sign-in asks for the password, later ones do not,
until SAML Single Logout ends that session.

Usage: idp_server.py CONFIG.json. The config has: port, tlsCert, tlsKey (PEM files), keyPem,
certPem (signing), issuer, user ({nameId, attributes}), password (optional) and sps:
{name: {acs, audience, slo (the SP's Single Logout URL, optional)}}.
Endpoints:
  GET /metadata                                  IdP metadata, with SingleLogoutService
  GET /sso/NAME?SAMLRequest=...&RelayState=...   answers the AuthnRequest of SP NAME
  GET /tile/NAME[?RelayState=...]                IdP-initiated sign-in to SP NAME
  POST /login/NAME                               the password form of both
  GET /slo/NAME?SAMLRequest|SAMLResponse=...     Single Logout (HTTP-Redirect binding): a
                                                 LogoutRequest from SP NAME (its signature
                                                 checked with the certificate in the SP's
                                                 metadata) ends the IdP session and is answered
                                                 with a signed LogoutResponse
  GET /logout/NAME                               IdP-initiated Single Logout at SP NAME
The pages it returns post the response to the SP's ACS by themselves, as IdPs do.
"""

import base64
import html
import json
import os
import ssl
import secrets
import sys
import threading
import urllib.request
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from lxml import etree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sign_response  # noqa: E402

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
CONFIG = json.load(open(sys.argv[1]))
# IdP sessions: cookie value -> {SP name: [SessionIndex, ...]}.
SESSIONS = {}
LOCK = threading.Lock()
COOKIE = "idp_session"


def when(delta):
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def response_for(sp, in_response_to, session=None, sp_name=None):
    assertion_id = "_a" + uuid.uuid4().hex
    if session is not None:
        # The assertion ID doubles as the SessionIndex (sign_response.py).
        with LOCK:
            SESSIONS.setdefault(session, {}).setdefault(sp_name, []).append(assertion_id)
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
        "assertionId": assertion_id,
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


def login_form(sp_name, saml_request, relay_state):
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
        for k, v in (("SAMLRequest", saml_request), ("RelayState", relay_state)) if v is not None)
    return f"""<!doctype html><html><body><h1>Test IdP</h1><form method="post" action="/login/{sp_name}">
{hidden}<label>Password <input type="password" id="password" name="password"></label>
<button id="signin">Sign in</button></form></body></html>"""


def metadata():
    cert = "".join(line for line in CONFIG["certPem"].splitlines() if not line.startswith("-----"))
    base = f"https://localhost:{CONFIG['port']}"
    return f"""<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{html.escape(CONFIG['issuer'])}"><md:IDPSSODescriptor protocolSupportEnumeration="{SAMLP}"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{base}/slo"/><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{base}/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"""


_SP_CERTS = {}


def sp_certificate(sp):
    """The SP's signing certificate (PEM), read from its metadata (its entity ID's URL)."""
    if sp["audience"] not in _SP_CERTS:
        xml = urllib.request.urlopen(sp["audience"], timeout=10).read()
        doc = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
        body = doc.find(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate").text.strip()
        lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
        _SP_CERTS[sp["audience"]] = f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"
    return _SP_CERTS[sp["audience"]]


def logout_redirect(sp, kind, relay_state, **fields):
    spec = {"kind": kind, "binding": "redirect", "keyPem": CONFIG["keyPem"], "certPem": CONFIG["certPem"],
            "issuer": CONFIG["issuer"], "destination": sp["slo"], "relayState": relay_state, **fields}
    return sp["slo"] + "?" + sign_response.build_logout(spec)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, location, headers=()):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()

    def session(self):
        """The IdP session of this browser, if it has one (always "none" without a password)."""
        if "password" not in CONFIG:
            return None
        for part in self.headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == COOKIE:
                with LOCK:
                    if v in SESSIONS:
                        return v
        return False

    def sign_in(self, sp_name, saml_request, relay_state, session):
        sp = CONFIG["sps"][sp_name]
        in_response_to = None
        if saml_request is not None:
            try:
                raw = zlib.decompress(base64.b64decode(saml_request), -15)
                request = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
            except Exception:  # noqa: BLE001 - a test IdP answers bad input with 400
                return self.answer(400, "bad SAMLRequest")
            if request.tag != f"{{{SAMLP}}}AuthnRequest":
                return self.answer(400, "not an AuthnRequest")
            if request.get("AssertionConsumerServiceURL") != sp["acs"]:
                return self.answer(400, "unexpected ACS URL")
            in_response_to = request.get("ID")
        body = post_form(sp["acs"], response_for(sp, in_response_to, session, sp_name), relay_state)
        headers = [("Set-Cookie", f"{COOKIE}={session}; Path=/; Secure; HttpOnly; SameSite=None")] if session else []
        return self.answer(200, body, headers)

    def do_POST(self):
        parts = urlparse(self.path).path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "login" or parts[1] not in CONFIG["sps"]:
            return self.answer(404, "no such page")
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if form.get("password") != CONFIG.get("password"):
            return self.answer(403, "wrong password")
        session = secrets.token_hex(16)
        with LOCK:
            SESSIONS[session] = {}
        return self.sign_in(parts[1], form.get("SAMLRequest"), form.get("RelayState"), session)

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/metadata":
            return self.answer(200, metadata(), [("Content-Type", "application/samlmetadata+xml")])
        parts = url.path.strip("/").split("/")
        if len(parts) != 2 or parts[1] not in CONFIG["sps"]:
            return self.answer(404, "no such page")
        sp_name, sp = parts[1], CONFIG["sps"][parts[1]]
        session = self.session()
        if parts[0] in ("sso", "tile"):
            saml_request = query.get("SAMLRequest") if parts[0] == "sso" else None
            if parts[0] == "sso" and saml_request is None:
                return self.answer(400, "bad SAMLRequest")
            if session is False:
                return self.answer(200, login_form(sp_name, saml_request, query.get("RelayState")))
            return self.sign_in(sp_name, saml_request, query.get("RelayState"), session)
        if parts[0] == "slo":
            try:
                xml = sign_response.verify_redirect(url.query, sp_certificate(sp))
                message = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
            except Exception:  # noqa: BLE001 - unsigned or forged: refused
                return self.answer(403, "the Single Logout message is not validly signed by the SP")
            if message.tag == f"{{{SAMLP}}}LogoutResponse":
                return self.answer(200, "<h1>Signed out at the IdP</h1><p>The application ended its session too.</p>")
            if message.tag != f"{{{SAMLP}}}LogoutRequest":
                return self.answer(400, "not a Single Logout message")
            if session:
                with LOCK:
                    SESSIONS.pop(session, None)
            location = logout_redirect(sp, "logoutResponse", query.get("RelayState"), inResponseTo=message.get("ID"))
            return self.redirect(location, [("Set-Cookie", f"{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=None")])
        if parts[0] == "logout":
            if not session:
                return self.answer(200, "<h1>Not signed in at the IdP</h1>")
            with LOCK:
                indexes = SESSIONS.pop(session, {}).get(sp_name, [])
            location = logout_redirect(sp, "logoutRequest", "idp-logout", nameId=CONFIG["user"]["nameId"],
                                       nameIdFormat="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                                       sessionIndexes=indexes)
            return self.redirect(location, [("Set-Cookie", f"{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=None")])
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
