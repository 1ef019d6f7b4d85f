//! Discovery (RFC 7643 §5–§8.7, RFC 7644 §4): the ServiceProviderConfig, the resource types
//! and the schema definitions that clients read to build their attribute mappings. Each
//! definition says what this server does with the attribute (what it stores, returns and
//! refuses), not only what the RFC allows.

use serde_json::{Value, json};

use super::patch::{CORE_GROUP, CORE_USER, ENTERPRISE_USER};

/// The Schema resource's schema URN.
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// The ResourceType resource's schema URN.
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// The ServiceProviderConfig resource's schema URN.
pub const SERVICE_PROVIDER_CONFIG: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

/// One attribute definition (RFC 7643 §7), built with the chained setters below.
#[derive(Clone, Debug)]
struct Attr {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    description: &'static str,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    returned: &'static str,
    uniqueness: &'static str,
    canonical: &'static [&'static str],
    reference_types: &'static [&'static str],
    sub: Vec<Attr>,
}

fn attr(name: &'static str, kind: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        description,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        canonical: &[],
        reference_types: &[],
        sub: Vec::new(),
    }
}

fn text(name: &'static str, description: &'static str) -> Attr {
    attr(name, "string", description)
}

impl Attr {
    fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn mutability(mut self, m: &'static str) -> Self {
        self.mutability = m;
        self
    }
    fn returned(mut self, r: &'static str) -> Self {
        self.returned = r;
        self
    }
    fn unique(mut self, u: &'static str) -> Self {
        self.uniqueness = u;
        self
    }
    fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical = values;
        self
    }
    fn references(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }
    fn sub(mut self, sub: Vec<Attr>) -> Self {
        self.sub = sub;
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.kind,
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        });
        if !self.canonical.is_empty() {
            v["canonicalValues"] = json!(self.canonical);
        }
        if !self.reference_types.is_empty() {
            v["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub.is_empty() {
            v["subAttributes"] = Value::Array(self.sub.iter().map(Attr::to_json).collect());
        }
        v
    }
}

fn id_attr() -> Attr {
    text(
        "id",
        "Issued by the server when the resource is created; stable and never reassigned.",
    )
    .case_exact()
    .mutability("readOnly")
    .returned("always")
    .unique("server")
}

fn external_id_attr() -> Attr {
    text(
        "externalId",
        "The client's own identifier of the resource, stored and matched exactly.",
    )
    .case_exact()
}

/// The sub-attributes of a multi-valued attribute such as emails (value, display, type,
/// primary), with the `type` values RFC 7643 names.
fn multi_valued(
    name: &'static str,
    description: &'static str,
    types: &'static [&'static str],
) -> Attr {
    attr(name, "complex", description).multi().sub(vec![
        text("value", "The value."),
        text("display", "A human-readable name, as sent."),
        text("type", "The kind of value, e.g. work or home.").canonical(types),
        attr(
            "primary",
            "boolean",
            "Whether this is the preferred value; Entra's \"True\"/\"False\" strings are accepted.",
        ),
    ])
}

fn user_attributes() -> Vec<Attr> {
    const KINDS: &[&str] = &["work", "home", "other"];
    vec![
        id_attr(),
        external_id_attr(),
        text(
            "userName",
            "Unique per IdentityProvider, compared case-insensitively and returned exactly as sent.",
        )
        .required()
        .unique("server"),
        attr("name", "complex", "The user's name, stored as sent.").sub(vec![
            text("formatted", "The full name."),
            text("familyName", "The family name."),
            text("givenName", "The given name."),
            text("middleName", "The middle name."),
            text("honorificPrefix", "Title before the name, e.g. Ms."),
            text("honorificSuffix", "Suffix after the name, e.g. III."),
        ]),
        text("displayName", "The name shown for the user."),
        text("nickName", "A casual name."),
        attr("profileUrl", "reference", "A profile page.").references(&["external"]),
        text("title", "The user's title, e.g. Vice President."),
        text("userType", "The relationship to the organisation, e.g. Employee."),
        text("preferredLanguage", "Preferred language, e.g. en-US."),
        text("locale", "Locale for formatting, e.g. en-US."),
        text("timezone", "Time zone in IANA form, e.g. Europe/Berlin."),
        attr(
            "active",
            "boolean",
            "Whether the user may sign in. false blocks sign-in and ends the user's sessions; absent (or removed by PATCH) means true.",
        ),
        text(
            "password",
            "Accepted and discarded: this server keeps no passwords and never returns one.",
        )
        .case_exact()
        .mutability("writeOnly")
        .returned("never"),
        multi_valued("emails", "Email addresses; filterable as emails[type eq \"work\"].value.", KINDS),
        multi_valued("phoneNumbers", "Phone numbers.", &["work", "home", "mobile", "fax", "pager", "other"]),
        multi_valued("ims", "Instant messaging addresses.", &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
        multi_valued("photos", "Photo URLs.", &["photo", "thumbnail"]),
        attr("addresses", "complex", "Postal addresses, stored as sent.")
            .multi()
            .sub(vec![
                text("formatted", "The full address."),
                text("streetAddress", "Street and number."),
                text("locality", "City."),
                text("region", "State or region."),
                text("postalCode", "Postal code."),
                text("country", "Country, ISO 3166-1 alpha-2."),
                text("type", "The kind of address.").canonical(KINDS),
                attr("primary", "boolean", "Whether this is the preferred address."),
            ]),
        attr(
            "groups",
            "complex",
            "The groups the user belongs to, derived from each group's members. Read-only: values sent for it are ignored; change membership through /Groups.",
        )
        .multi()
        .mutability("readOnly")
        .sub(vec![
            text("value", "The group's id.")
                .case_exact()
                .mutability("readOnly"),
            attr("$ref", "reference", "The group's URL.")
                .mutability("readOnly")
                .references(&["Group"]),
        ]),
        multi_valued("entitlements", "Entitlements, stored as sent.", &[]),
        multi_valued("roles", "Roles, stored as sent.", &[]),
        multi_valued("x509Certificates", "Certificates (DER, base64), stored as sent.", &[]),
    ]
}

fn group_attributes() -> Vec<Attr> {
    vec![
        id_attr(),
        external_id_attr(),
        text(
            "displayName",
            "The group's name, compared case-insensitively in filters.",
        )
        .required(),
        attr(
            "members",
            "complex",
            "The group's members: users of the same IdentityProvider. An unknown id is refused with 400 invalidValue.",
        )
        .multi()
        .sub(vec![
            text("value", "The member's id.")
                .case_exact()
                .mutability("immutable"),
            attr("$ref", "reference", "The member's URL; ignored when sent.")
                .mutability("immutable")
                .references(&["User"]),
            text("type", "The member's resource type.")
                .mutability("immutable")
                .canonical(&["User"]),
        ]),
    ]
}

fn enterprise_attributes() -> Vec<Attr> {
    vec![
        text("employeeNumber", "The employee number."),
        text("costCenter", "The cost center."),
        text("organization", "The organization."),
        text("division", "The division."),
        text("department", "The department."),
        attr("manager", "complex", "The user's manager.").sub(vec![
            text("value", "The manager's id."),
            attr("$ref", "reference", "The manager's URL.").references(&["User"]),
            text("displayName", "The manager's name.").mutability("readOnly"),
        ]),
    ]
}

fn meta_attr() -> Attr {
    attr("meta", "complex", "Resource metadata.")
        .mutability("readOnly")
        .sub(vec![
            text("resourceType", "The resource type.")
                .case_exact()
                .mutability("readOnly"),
            text("location", "The resource's URL.")
                .case_exact()
                .mutability("readOnly"),
        ])
}

fn service_provider_config_attributes() -> Vec<Attr> {
    let supported = |name: &'static str, description: &'static str| {
        attr(name, "complex", description)
            .required()
            .mutability("readOnly")
            .sub(vec![
                attr("supported", "boolean", "Whether the feature is offered.")
                    .required()
                    .mutability("readOnly"),
            ])
    };
    let mut bulk = supported("bulk", "Bulk operations (not offered).");
    bulk.sub.push(
        attr("maxOperations", "integer", "Most operations per request.")
            .required()
            .mutability("readOnly"),
    );
    bulk.sub.push(
        attr("maxPayloadSize", "integer", "Largest payload in bytes.")
            .required()
            .mutability("readOnly"),
    );
    let mut filter = supported("filter", "Filtering.");
    filter.sub.push(
        attr("maxResults", "integer", "Most resources in one response.")
            .required()
            .mutability("readOnly"),
    );
    vec![
        attr(
            "documentationUri",
            "reference",
            "Documentation of this server.",
        )
        .mutability("readOnly")
        .references(&["external"]),
        supported("patch", "PATCH."),
        bulk,
        filter,
        supported("changePassword", "Password changes."),
        supported("sort", "Sorting with sortBy and sortOrder."),
        supported("etag", "ETags and If-Match."),
        attr(
            "authenticationSchemes",
            "complex",
            "How clients authenticate.",
        )
        .multi()
        .required()
        .mutability("readOnly")
        .sub(vec![
            text("type", "The scheme.")
                .required()
                .mutability("readOnly")
                .canonical(&["oauthbearertoken"]),
            text("name", "The scheme's name.")
                .required()
                .mutability("readOnly"),
            text("description", "The scheme's description.")
                .required()
                .mutability("readOnly"),
            attr(
                "primary",
                "boolean",
                "Whether this is the preferred scheme.",
            )
            .mutability("readOnly"),
        ]),
        meta_attr(),
    ]
}

fn resource_type_attributes() -> Vec<Attr> {
    vec![
        text("id", "The resource type's id.")
            .case_exact()
            .mutability("readOnly"),
        text("name", "The resource type's name.")
            .required()
            .mutability("readOnly"),
        text("description", "The resource type's description.").mutability("readOnly"),
        attr(
            "endpoint",
            "reference",
            "The endpoint, relative to the base URL.",
        )
        .required()
        .mutability("readOnly")
        .references(&["uri"]),
        attr("schema", "reference", "The core schema's URN.")
            .required()
            .case_exact()
            .mutability("readOnly")
            .references(&["uri"]),
        attr("schemaExtensions", "complex", "The extension schemas.")
            .multi()
            .mutability("readOnly")
            .sub(vec![
                attr("schema", "reference", "The extension's URN.")
                    .required()
                    .case_exact()
                    .mutability("readOnly")
                    .references(&["uri"]),
                attr(
                    "required",
                    "boolean",
                    "Whether resources must carry the extension.",
                )
                .required()
                .mutability("readOnly"),
            ]),
        meta_attr(),
    ]
}

fn schema_attributes() -> Vec<Attr> {
    let definition = |sub: Vec<Attr>| {
        let mut all = vec![
            text("name", "The attribute's name.")
                .required()
                .case_exact()
                .mutability("readOnly"),
            text("type", "The attribute's data type.")
                .required()
                .mutability("readOnly")
                .canonical(&[
                    "string",
                    "complex",
                    "boolean",
                    "decimal",
                    "integer",
                    "dateTime",
                    "reference",
                ]),
            attr("multiValued", "boolean", "Whether the attribute is a list.")
                .required()
                .mutability("readOnly"),
            text("description", "What the attribute holds.").mutability("readOnly"),
            attr("required", "boolean", "Whether the attribute is required.")
                .mutability("readOnly"),
            text("canonicalValues", "Suggested values.")
                .multi()
                .mutability("readOnly"),
            attr(
                "caseExact",
                "boolean",
                "Whether comparisons are case-sensitive.",
            )
            .mutability("readOnly"),
            text("mutability", "Whether and how the attribute can change.")
                .mutability("readOnly")
                .canonical(&["readOnly", "readWrite", "immutable", "writeOnly"]),
            text("returned", "When the attribute is returned.")
                .mutability("readOnly")
                .canonical(&["always", "never", "default", "request"]),
            text("uniqueness", "How values must be unique.")
                .mutability("readOnly")
                .canonical(&["none", "server", "global"]),
            text("referenceTypes", "Resource types a reference may point to.")
                .multi()
                .mutability("readOnly"),
        ];
        all.extend(sub);
        all
    };
    let nested = attr(
        "subAttributes",
        "complex",
        "The sub-attributes of a complex attribute.",
    )
    .multi()
    .mutability("readOnly")
    .sub(definition(Vec::new()));
    vec![
        text("id", "The schema's URN.")
            .required()
            .case_exact()
            .mutability("readOnly")
            .unique("global"),
        text("name", "The schema's name.").mutability("readOnly"),
        text("description", "The schema's description.").mutability("readOnly"),
        attr(
            "attributes",
            "complex",
            "The schema's attribute definitions.",
        )
        .multi()
        .required()
        .mutability("readOnly")
        .sub(definition(vec![nested])),
        meta_attr(),
    ]
}

/// The schemas served under `/Schemas`: (id, name, description, attributes).
fn definitions() -> Vec<(&'static str, &'static str, &'static str, Vec<Attr>)> {
    vec![
        (CORE_USER, "User", "User Account", user_attributes()),
        (CORE_GROUP, "Group", "Group", group_attributes()),
        (
            ENTERPRISE_USER,
            "EnterpriseUser",
            "Enterprise User",
            enterprise_attributes(),
        ),
        (
            SERVICE_PROVIDER_CONFIG,
            "Service Provider Configuration",
            "Schema for representing the service provider's configuration",
            service_provider_config_attributes(),
        ),
        (
            RESOURCE_TYPE,
            "ResourceType",
            "Specifies the schema that describes a SCIM resource type",
            resource_type_attributes(),
        ),
        (
            SCHEMA,
            "Schema",
            "Specifies the schema attributes",
            schema_attributes(),
        ),
    ]
}

/// Every schema definition, as served by `GET /Schemas`.
pub fn schemas(base_url: &str) -> Vec<Value> {
    definitions()
        .into_iter()
        .map(|(id, name, description, attributes)| {
            json!({
                "schemas": [SCHEMA],
                "id": id,
                "name": name,
                "description": description,
                "attributes": attributes.iter().map(Attr::to_json).collect::<Vec<_>>(),
                "meta": { "resourceType": "Schema", "location": format!("{base_url}/Schemas/{id}") },
            })
        })
        .collect()
}

/// The schema with `id` (URNs compare case-insensitively), as served by `GET /Schemas/{id}`.
pub fn schema(id: &str, base_url: &str) -> Option<Value> {
    schemas(base_url)
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(id)))
}

/// The resource types, as served by `GET /ResourceTypes`.
pub fn resource_types(base_url: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE], "id": "User", "name": "User", "description": "User Account", "endpoint": "/Users",
            "schema": CORE_USER,
            "schemaExtensions": [{ "schema": ENTERPRISE_USER, "required": false }],
            "meta": { "resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/User") }
        }),
        json!({
            "schemas": [RESOURCE_TYPE], "id": "Group", "name": "Group", "description": "Group", "endpoint": "/Groups",
            "schema": CORE_GROUP,
            "meta": { "resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/Group") }
        }),
    ]
}

/// The resource type with `id` (case-insensitive), as served by `GET /ResourceTypes/{id}`.
pub fn resource_type(id: &str, base_url: &str) -> Option<Value> {
    resource_types(base_url)
        .into_iter()
        .find(|t| t["id"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(id)))
}

/// The ServiceProviderConfig: what the server implements.
pub fn service_provider_config(base_url: &str, max_results: i64) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": max_results },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "The token of a ScimToken resource, sent as Authorization: Bearer <token>",
            "primary": true
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base_url}/ServiceProviderConfig") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: &Value, path: &str) {
        for key in [
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
        ] {
            assert!(a.get(key).is_some(), "{path}: no {key}");
        }
        let complex = a["type"] == "complex";
        assert_eq!(complex, a.get("subAttributes").is_some(), "{path}");
        assert_eq!(
            a["type"] == "reference",
            a.get("referenceTypes").is_some(),
            "{path}"
        );
        for s in a["subAttributes"].as_array().into_iter().flatten() {
            check(s, &format!("{path}.{}", s["name"]));
        }
    }

    #[test]
    fn every_attribute_is_fully_described_and_names_are_unique() {
        for s in schemas("https://x/scim/v2/ns/idp") {
            let attributes = s["attributes"].as_array().unwrap();
            let mut names: Vec<String> = attributes
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_ascii_lowercase())
                .collect();
            names.sort();
            let count = names.len();
            names.dedup();
            assert_eq!(count, names.len(), "{}", s["id"]);
            for a in attributes {
                check(a, &format!("{}:{}", s["id"], a["name"]));
            }
        }
    }

    #[test]
    fn lookups_by_id_are_case_insensitive_and_unknown_ids_are_none() {
        let base = "https://x/scim/v2/ns/idp";
        assert_eq!(
            schema(&CORE_USER.to_ascii_uppercase(), base).unwrap()["id"],
            CORE_USER
        );
        assert!(schema("urn:example", base).is_none());
        assert_eq!(resource_type("group", base).unwrap()["id"], "Group");
        assert!(resource_type("Printer", base).is_none());
    }
}
