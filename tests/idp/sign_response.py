"""A test identity provider: builds a SAML 2.0 Response from a JSON description on stdin and
signs it with signxml (an implementation independent of the one under test). Prints the
base64 SAMLResponse, as an IdP would POST it to the ACS.

Encryption (optional, after signing, with the `cryptography` package): "encrypt" is
{"certPem": the SP's encryption certificate, "data": aes128-gcm | aes256-gcm | aes128-cbc |
aes256-cbc, "key": rsa-oaep-mgf1p | rsa-oaep (SHA-256 digest and MGF1) | rsa-1_5,
"keyPlacement": "inside" (EncryptedKey in the EncryptedData's KeyInfo, Okta) or "sibling"
(next to EncryptedData with a RetrievalMethod, Entra)}.

Fields: keyPem, certPem, issuer, destination, audience, recipient, inResponseTo (optional),
nameId, nameIdFormat, attributes ({name: [values]}), sign ("assertion", "response", "both" or
"none"), notBefore, notOnOrAfter (RFC 3339), assertionId, responseId, signatureAlgorithm
(default rsa-sha256), digestAlgorithm (default sha256), statusCode (default Success),
confirmationMethod (default bearer).
"""

import base64
import json
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
    public = x509.load_pem_x509_certificate(options["certPem"].encode()).public_key()
    transport = options.get("key", "rsa-oaep-mgf1p")
    if transport == "rsa-oaep-mgf1p":
        wrapped = public.encrypt(key, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
        key_algorithm = XENC + "rsa-oaep-mgf1p"
    elif transport == "rsa-oaep":
        wrapped = public.encrypt(key, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        key_algorithm = XENC11 + "rsa-oaep"
    else:
        wrapped = public.encrypt(key, padding.PKCS1v15())
        key_algorithm = XENC + "rsa-1_5"

    encrypted_assertion = etree.Element(f"{{{SAML}}}EncryptedAssertion", nsmap={"saml": SAML})
    data = etree.SubElement(encrypted_assertion, f"{{{XENC}}}EncryptedData", nsmap={"xenc": XENC, "ds": DS},
                            Type=XENC + "Element", Id="_ed1")
    etree.SubElement(data, f"{{{XENC}}}EncryptionMethod", Algorithm=algorithm)
    key_info = etree.SubElement(data, f"{{{DS}}}KeyInfo")

    def encrypted_key(parent):
        ek = etree.SubElement(parent, f"{{{XENC}}}EncryptedKey", nsmap={"xenc": XENC, "ds": DS}, Id="_ek1")
        method = etree.SubElement(ek, f"{{{XENC}}}EncryptionMethod", Algorithm=key_algorithm)
        if transport == "rsa-oaep":
            etree.SubElement(method, f"{{{DS}}}DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
            etree.SubElement(method, f"{{{XENC11}}}MGF", nsmap={"xenc11": XENC11}, Algorithm=XENC11 + "mgf1sha256")
        cipher = etree.SubElement(etree.SubElement(ek, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue")
        cipher.text = base64.b64encode(wrapped).decode()
        return ek

    if options.get("keyPlacement", "inside") == "inside":
        encrypted_key(key_info)
    else:
        etree.SubElement(key_info, f"{{{DS}}}RetrievalMethod", URI="#_ek1",
                         Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey")
    cipher = etree.SubElement(etree.SubElement(data, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue")
    cipher.text = base64.b64encode(blob).decode()
    if options.get("keyPlacement", "inside") != "inside":
        encrypted_key(encrypted_assertion)
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


def main():
    spec = json.load(sys.stdin)
    if isinstance(spec, list):
        # Batch mode (benchmarks): one response per line.
        for item in spec:
            sys.stdout.write(build(item) + "\n")
    else:
        sys.stdout.write(build(spec))


if __name__ == "__main__":
    main()
