"""A test identity provider: builds a SAML 2.0 Response from a JSON description on stdin and
signs it with signxml (an implementation independent of the one under test). Prints the
base64 SAMLResponse, as an IdP would POST it to the ACS.

Encryption (optional, after signing, with the `cryptography` package): "encrypt" is
{"certPem": the SP's encryption certificate, "data": aes128-gcm | aes256-gcm | aes128-cbc |
aes256-cbc, "key": rsa-oaep-mgf1p | rsa-oaep (SHA-256 digest and MGF1) | rsa-1_5,
"keyPlacement": "inside" (EncryptedKey in the EncryptedData's KeyInfo, Okta) or "sibling"
(next to EncryptedData with a RetrievalMethod, Entra), "extraKeyCertPems": certificates for
which further EncryptedKeys of the same content key are added next to the first}.

Fields: keyPem, certPem, issuer, destination, audience, recipient, inResponseTo (optional),
nameId, nameIdFormat, attributes ({name: [values]}), sign ("assertion", "response", "both" or
"none"), notBefore, notOnOrAfter (RFC 3339), assertionId, responseId, signatureAlgorithm
(default rsa-sha256), digestAlgorithm (default sha256), statusCode (default Success),
confirmationMethod (default bearer).

Single Logout: with "kind": "logoutRequest" or "logoutResponse" it builds that message instead
(see build_logout), signed for the HTTP-Redirect or HTTP-POST binding; "verifyRedirect"
({query, certPem}) and "verifyPost" ({message, certPem}) check the signature of a message the
SP sent and print its XML.
"""

import base64
import json
import os
import sys
from datetime import datetime, timezone

from lxml import etree
from signxml import XMLSigner, methods

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
NSMAP = {"samlp": SAMLP, "saml": SAML}


def el(parent, ns, tag, text=None, **attrs):
    node = etree.SubElement(parent, f"{{{ns}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        node.text = text
    return node


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_KEYS = {}


def private_key(pem):
    """The loaded key (loading checks the RSA key, which costs more than signing: cache it)."""
    if pem not in _KEYS:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        _KEYS[pem] = load_pem_private_key(pem.encode(), password=None)
    return _KEYS[pem]


def sign(element, spec):
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=spec.get("signatureAlgorithm", "rsa-sha256"),
        digest_algorithm=spec.get("digestAlgorithm", "sha256"),
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    # Placed right after Issuer, where the SAML schema wants it.
    placeholder = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS}, Id="placeholder")
    element.insert(1, placeholder)
    signed = signer.sign(element, key=private_key(spec["keyPem"]), cert=spec["certPem"], reference_uri=element.get("ID"))
    return signed


XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
DATA_ALGORITHMS = {
    "aes128-gcm": (XENC11 + "aes128-gcm", 16, True),
    "aes256-gcm": (XENC11 + "aes256-gcm", 32, True),
    "aes128-cbc": (XENC + "aes128-cbc", 16, False),
    "aes256-cbc": (XENC + "aes256-cbc", 32, False),
}


def encrypt(assertion, options):
    """Wraps `assertion` in an EncryptedAssertion for the certificate in `options`."""
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, padding as sym_padding
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    plaintext = etree.tostring(assertion)
    algorithm, size, gcm = DATA_ALGORITHMS[options.get("data", "aes256-gcm")]
    key = os.urandom(size)
    if gcm:
        iv = os.urandom(12)
        blob = iv + AESGCM(key).encrypt(iv, plaintext, None)
    else:
        iv = os.urandom(16)
        padder = sym_padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        blob = iv + encryptor.update(padded) + encryptor.finalize()
    transport = options.get("key", "rsa-oaep-mgf1p")

    def wrap(cert_pem):
        public = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
        if transport == "rsa-oaep-mgf1p":
            return public.encrypt(key, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
        if transport == "rsa-oaep":
            return public.encrypt(key, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        return public.encrypt(key, padding.PKCS1v15())

    key_algorithm = {"rsa-oaep-mgf1p": XENC + "rsa-oaep-mgf1p", "rsa-oaep": XENC11 + "rsa-oaep"}.get(transport, XENC + "rsa-1_5")

    encrypted_assertion = etree.Element(f"{{{SAML}}}EncryptedAssertion", nsmap={"saml": SAML})
    data = etree.SubElement(encrypted_assertion, f"{{{XENC}}}EncryptedData", nsmap={"xenc": XENC, "ds": DS},
                            Type=XENC + "Element", Id="_ed1")
    etree.SubElement(data, f"{{{XENC}}}EncryptionMethod", Algorithm=algorithm)
    key_info = etree.SubElement(data, f"{{{DS}}}KeyInfo")

    def encrypted_key(parent, cert_pem=options["certPem"], ek_id="_ek1"):
        ek = etree.SubElement(parent, f"{{{XENC}}}EncryptedKey", nsmap={"xenc": XENC, "ds": DS}, Id=ek_id)
        method = etree.SubElement(ek, f"{{{XENC}}}EncryptionMethod", Algorithm=key_algorithm)
        if transport == "rsa-oaep":
            etree.SubElement(method, f"{{{DS}}}DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
            etree.SubElement(method, f"{{{XENC11}}}MGF", nsmap={"xenc11": XENC11}, Algorithm=XENC11 + "mgf1sha256")
        cipher = etree.SubElement(etree.SubElement(ek, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue")
        cipher.text = base64.b64encode(wrap(cert_pem)).decode()
        return ek

    if options.get("keyPlacement", "inside") == "inside":
        encrypted_key(key_info)
        for i, extra in enumerate(options.get("extraKeyCertPems") or []):
            encrypted_key(key_info, extra, f"_ek{i + 2}")
    else:
        etree.SubElement(key_info, f"{{{DS}}}RetrievalMethod", URI="#_ek1",
                         Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey")
    cipher = etree.SubElement(etree.SubElement(data, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue")
    cipher.text = base64.b64encode(blob).decode()
    if options.get("keyPlacement", "inside") != "inside":
        encrypted_key(encrypted_assertion)
        for i, extra in enumerate(options.get("extraKeyCertPems") or []):
            encrypted_key(encrypted_assertion, extra, f"_ek{i + 2}")
    return encrypted_assertion


def build(spec):
    """The base64 SAMLResponse described by `spec`."""
    issued = now()
    response = etree.Element(f"{{{SAMLP}}}Response", nsmap=NSMAP, ID=spec["responseId"], Version="2.0", IssueInstant=issued,
                             Destination=spec.get("destination"))
    if spec.get("inResponseTo"):
        response.set("InResponseTo", spec["inResponseTo"])
    el(response, SAML, "Issuer", spec["issuer"])
    status = el(response, SAMLP, "Status")
    el(status, SAMLP, "StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:" + spec.get("statusCode", "Success"))

    assertion = etree.Element(f"{{{SAML}}}Assertion", nsmap={"saml": SAML}, ID=spec["assertionId"], Version="2.0", IssueInstant=issued)
    el(assertion, SAML, "Issuer", spec["issuer"])
    subject = el(assertion, SAML, "Subject")
    el(subject, SAML, "NameID", spec["nameId"], Format=spec.get("nameIdFormat"))
    confirmation = el(subject, SAML, "SubjectConfirmation",
                      Method=spec.get("confirmationMethod", "urn:oasis:names:tc:SAML:2.0:cm:bearer"))
    el(confirmation, SAML, "SubjectConfirmationData", Recipient=spec.get("recipient"), NotOnOrAfter=spec["notOnOrAfter"],
       InResponseTo=spec.get("inResponseTo"))
    conditions = el(assertion, SAML, "Conditions", NotBefore=spec["notBefore"], NotOnOrAfter=spec["notOnOrAfter"])
    restriction = el(conditions, SAML, "AudienceRestriction")
    el(restriction, SAML, "Audience", spec["audience"])
    authn = el(assertion, SAML, "AuthnStatement", AuthnInstant=issued, SessionIndex=spec["assertionId"])
    context = el(authn, SAML, "AuthnContext")
    el(context, SAML, "AuthnContextClassRef", "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
    attributes = spec.get("attributes") or {}
    if attributes:
        statement = el(assertion, SAML, "AttributeStatement")
        for name, values in attributes.items():
            attribute = el(statement, SAML, "Attribute", Name=name, NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified")
            for value in values:
                el(attribute, SAML, "AttributeValue", value)

    mode = spec.get("sign", "assertion")
    if mode in ("assertion", "both"):
        assertion = sign(assertion, spec)
    if spec.get("encrypt"):
        assertion = encrypt(assertion, spec["encrypt"])
    response.append(assertion)
    if mode in ("response", "both"):
        response = sign(response, spec)
    return base64.b64encode(etree.tostring(response)).decode()


SIG_ALGS = {
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "rsa-sha384": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "rsa-sha512": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
}


def logout_message(spec):
    """The LogoutRequest ("kind": "logoutRequest") or LogoutResponse ("logoutResponse")
    described by `spec` (fields: issuer, destination, id, issueInstant (default now),
    nameId, nameIdFormat, sessionIndexes (list), inResponseTo, statusCode)."""
    attrs = {"ID": spec.get("id") or "_l" + os.urandom(16).hex(), "Version": "2.0",
             "IssueInstant": spec.get("issueInstant") or now()}
    if spec.get("destination"):
        attrs["Destination"] = spec["destination"]
    if spec["kind"] == "logoutRequest":
        root = etree.Element(f"{{{SAMLP}}}LogoutRequest", attrs, nsmap=NSMAP)
        el(root, SAML, "Issuer", spec["issuer"])
        el(root, SAML, "NameID", spec["nameId"], Format=spec.get("nameIdFormat"))
        for index in spec.get("sessionIndexes") or []:
            el(root, SAMLP, "SessionIndex", index)
    else:
        if spec.get("inResponseTo"):
            attrs["InResponseTo"] = spec["inResponseTo"]
        root = etree.Element(f"{{{SAMLP}}}LogoutResponse", attrs, nsmap=NSMAP)
        el(root, SAML, "Issuer", spec["issuer"])
        status = el(root, SAMLP, "Status")
        el(status, SAMLP, "StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:" + spec.get("statusCode", "Success"))
    return root


def build_logout(spec):
    """A signed Single Logout message. "binding": "post" gives the base64 message with an
    enveloped signature ("sign": false leaves it unsigned); "redirect" gives the query string
    of the HTTP-Redirect binding (SAMLRequest or SAMLResponse, RelayState, SigAlg, Signature),
    signed over the URL-encoded parameters as SAML bindings §3.4.4.1 says ("sign": false
    leaves SigAlg and Signature out)."""
    from urllib.parse import quote_plus
    import zlib

    root = logout_message(spec)
    field = "SAMLRequest" if spec["kind"] == "logoutRequest" else "SAMLResponse"
    if spec.get("binding", "redirect") == "post":
        if spec.get("sign", True):
            root = sign(root, spec)
        return base64.b64encode(etree.tostring(root)).decode()
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = deflater.compress(etree.tostring(root)) + deflater.flush()
    query = f"{field}={quote_plus(base64.b64encode(deflated).decode())}"
    if spec.get("relayState") is not None:
        query += f"&RelayState={quote_plus(spec['relayState'])}"
    if not spec.get("sign", True):
        return query
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    algorithm = spec.get("signatureAlgorithm", "rsa-sha256")
    query += f"&SigAlg={quote_plus(SIG_ALGS[algorithm])}"
    digest = {"rsa-sha256": hashes.SHA256(), "rsa-sha384": hashes.SHA384(), "rsa-sha512": hashes.SHA512(),
              "rsa-sha1": hashes.SHA1()}[algorithm]
    signature = private_key(spec["keyPem"]).sign(query.encode(), padding.PKCS1v15(), digest)
    return query + f"&Signature={quote_plus(base64.b64encode(signature).decode())}"


def verify_redirect(query, cert_pem):
    """The XML of an HTTP-Redirect query whose signature verifies with `cert_pem`; raises
    otherwise (the test IdP checks the SP's messages this way)."""
    from urllib.parse import unquote_plus
    import zlib

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    raw = dict(pair.split("=", 1) for pair in query.split("&") if "=" in pair)
    field = "SAMLRequest" if "SAMLRequest" in raw else "SAMLResponse"
    signed = f"{field}={raw[field]}"
    if "RelayState" in raw:
        signed += f"&RelayState={raw['RelayState']}"
    signed += f"&SigAlg={raw['SigAlg']}"
    if unquote_plus(raw["SigAlg"]) != SIG_ALGS["rsa-sha256"]:
        raise ValueError("unexpected SigAlg")
    public = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    public.verify(base64.b64decode(unquote_plus(raw["Signature"])), signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return zlib.decompress(base64.b64decode(unquote_plus(raw[field])), -15)


def verify_post(message, cert_pem):
    """The XML of a base64 HTTP-POST message whose enveloped signature verifies with
    `cert_pem` (signxml); raises otherwise."""
    from signxml import XMLVerifier

    root = etree.fromstring(base64.b64decode(message), etree.XMLParser(resolve_entities=False, no_network=True))
    verified = XMLVerifier().verify(root, x509_cert=cert_pem, expect_references=1).signed_xml
    return etree.tostring(verified)


def main():
    spec = json.load(sys.stdin)
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind in ("logoutRequest", "logoutResponse"):
        sys.stdout.write(build_logout(spec))
        return
    if kind == "verifyRedirect":
        sys.stdout.write(verify_redirect(spec["query"], spec["certPem"]).decode())
        return
    if kind == "verifyPost":
        sys.stdout.write(verify_post(spec["message"], spec["certPem"]).decode())
        return
    if isinstance(spec, list):
        # Batch mode (benchmarks): one response per line.
        for item in spec:
            sys.stdout.write(build(item) + "\n")
    else:
        sys.stdout.write(build(spec))


if __name__ == "__main__":
    main()
