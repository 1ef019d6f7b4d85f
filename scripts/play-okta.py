"""Plays Okta's part in the local demo (scripts/demo): a signing key, a SCIM push and a signed
SAML sign-in, against a running sso-operator. Runs with the test IdP's Python environment
(tests/idp/setup), whose signxml signs the responses.

  play-okta.py keygen DIR            writes DIR/idp.key and DIR/idp.crt, prints a merge patch
                                     that makes the IdentityProvider trust the certificate
  play-okta.py push BASE_URL TOKEN   "Test Connector Configuration", then pushes a user and a group
  play-okta.py login EXTERNAL_URL NAMESPACE NAME DIR
                                     SP-initiated sign-in answered with a signed response,
                                     then /auth/verify with the session cookie
"""

import base64
import json
import os
import sys
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from http.cookies import SimpleCookie
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode, urlparse
from urllib.request import HTTPRedirectHandler, Request, build_opener

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "idp"))
import sign_response  # noqa: E402

ISSUER = "http://www.okta.com/exk1a2b3c4d5e6f7g8h9"
USER = "ada.lovelace@example.com"


class NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = build_opener(NoRedirect)


def call(method, url, body=None, headers=None):
    data = None if body is None else body.encode()
    request = Request(url, data=data, method=method, headers=headers or {})
    try:
        with OPENER.open(request, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except HTTPError as e:
        return e.code, e.headers, e.read().decode()


def keygen(folder):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    os.makedirs(folder, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "demo-okta")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    with open(os.path.join(folder, "idp.key"), "w") as f:
        f.write(key_pem)
    with open(os.path.join(folder, "idp.crt"), "w") as f:
        f.write(cert_pem)
    # The values a user pastes from Okta in place of the example's REPLACE-ME placeholders.
    print(json.dumps({"spec": {"idp": {
        "ssoUrl": "https://example-org.okta.com/app/example_app_1/exk1a2b3c4d5e6f7g8h9/sso/saml",
        "entityId": ISSUER,
        "certificates": [{"pem": cert_pem}],
    }}}))


def push(base, token):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    status, _, _ = call("GET", f"{base}/Users?startIndex=1&count=2", headers=headers)
    print(f"  Test Connector Configuration: GET /Users -> {status}")
    query = urlencode({"filter": f'userName eq "{USER}"', "startIndex": 1, "count": 100})
    status, _, body = call("GET", f"{base}/Users?{query}", headers=headers)
    found = json.loads(body).get("Resources", []) if status == 200 else []
    if found:
        user_id = found[0]["id"]
        print(f"  user {USER} exists already ({user_id})")
    else:
        user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": USER,
                "name": {"givenName": "Ada", "familyName": "Lovelace"}, "displayName": "Ada Lovelace",
                "emails": [{"primary": True, "value": USER, "type": "work"}], "active": True}
        status, _, body = call("POST", f"{base}/Users", json.dumps(user), headers)
        user_id = json.loads(body)["id"]
        print(f"  POST /Users {USER} -> {status} (id {user_id})")
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "engineering",
             "members": [{"value": user_id}]}
    status, _, _ = call("POST", f"{base}/Groups", json.dumps(group), headers)
    print(f"  POST /Groups engineering -> {status}")


def login(external, namespace, name, folder):
    tenant = f"{namespace}/{name}"
    saml = f"{external}/saml/{tenant}"
    status, headers, _ = call("GET", f"{saml}/login?redirect=/")
    if status != 302:
        sys.exit(f"login answered {status}")
    location = urlparse(headers["Location"])
    query = parse_qs(location.query)
    request = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
    relay = query["RelayState"][0]
    print(f"  /login -> 302 to the IdP with an AuthnRequest ({len(request)} bytes), RelayState {relay[:12]}…")
    login_cookie = SimpleCookie(headers["Set-Cookie"])
    cookie = "; ".join(f"{k}={v.value}" for k, v in login_cookie.items())
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    spec = {
        "keyPem": open(os.path.join(folder, "idp.key")).read(),
        "certPem": open(os.path.join(folder, "idp.crt")).read(),
        "issuer": ISSUER, "destination": f"{saml}/acs", "recipient": f"{saml}/acs",
        "audience": f"{saml}/metadata", "inResponseTo": relay, "nameId": USER,
        "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "attributes": {"email": [USER], "firstName": ["Ada"], "lastName": ["Lovelace"]},
        "sign": "assertion", "notBefore": (now - timedelta(seconds=30)).strftime(fmt),
        "notOnOrAfter": (now + timedelta(minutes=5)).strftime(fmt),
        "assertionId": "_a" + uuid.uuid4().hex, "responseId": "_r" + uuid.uuid4().hex,
    }
    form = urlencode({"SAMLResponse": sign_response.build(spec), "RelayState": relay})
    status, headers, _ = call("POST", f"{saml}/acs", form,
                              {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    print(f"  POST /acs with a signed response -> {status}")
    sessions = [v for v in headers.get_all("Set-Cookie") or [] if v.startswith(("__Host-sso_session_", "sso_session_"))]
    if not sessions:
        sys.exit("no session cookie: see `kubectl get idp -o yaml` status.signIn")
    session = sessions[0].split(";")[0]
    status, headers, _ = call("GET", f"{external}/auth/verify?identityProvider={tenant}",
                              headers={"Cookie": session})
    print(f"  /auth/verify -> {status}")
    for h in ("X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"):
        print(f"    {h}: {headers.get(h)}")


def main():
    command, args = sys.argv[1], sys.argv[2:]
    {"keygen": keygen, "push": push, "login": login}[command](*args)


if __name__ == "__main__":
    main()
