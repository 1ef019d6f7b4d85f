"""A test identity provider: builds a SAML 2.0 Response from a JSON description on stdin and
signs it with signxml (an implementation independent of the one under test). Prints the
base64 SAMLResponse, as an IdP would POST it to the ACS.

Fields: keyPem, certPem, issuer, destination, audience, recipient, inResponseTo (optional),
nameId, nameIdFormat, attributes ({name: [values]}), sign ("assertion", "response", "both" or
"none"), notBefore, notOnOrAfter (RFC 3339), assertionId, responseId, signatureAlgorithm
(default rsa-sha256), digestAlgorithm (default sha256), statusCode (default Success).
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
    signed = signer.sign(element, key=spec["keyPem"].encode(), cert=spec["certPem"], reference_uri=element.get("ID"))
    return signed


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
    confirmation = el(subject, SAML, "SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
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
    response.append(assertion)
    if mode in ("response", "both"):
        response = sign(response, spec)
    return base64.b64encode(etree.tostring(response)).decode()


def main():
    sys.stdout.write(build(json.load(sys.stdin)))


if __name__ == "__main__":
    main()
