//! The field reference in `docs/reference.md`, rendered from the CRD schemas, the condition
//! lists of [`super::conditions`] and the refusal reasons of [`super::SignInRefusal`] and
//! [`super::LogoutRefusal`] (never
//! written by hand; a test checks the committed file).

use serde_json::Value;

use super::conditions::{self, Documented};
use super::{LogoutRefusal, SignInRefusal};

fn type_of(schema: &Value) -> String {
    let base = match schema.get("type").and_then(Value::as_str) {
        Some("array") => {
            let item = schema.get("items").map(type_of).unwrap_or_default();
            format!("[]{item}")
        }
        Some(t) => t.to_owned(),
        None if schema.get("x-kubernetes-int-or-string").is_some() => "int-or-string".to_owned(),
        None => "object".to_owned(),
    };
    match schema.get("enum").and_then(Value::as_array) {
        Some(values) => {
            let values: Vec<String> = values
                .iter()
                .filter_map(Value::as_str)
                .map(|v| format!("`{v}`"))
                .collect();
            format!("{base}: {}", values.join(", "))
        }
        None => base,
    }
}

/// The `required` list of an object schema.
fn required_of(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn walk(schema: &Value, path: &str, required: &[String], rows: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let field = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let mut notes = Vec::new();
        if let Some(d) = prop.get("default") {
            notes.push(format!("default `{d}`"));
        }
        if required.contains(name) {
            notes.push("required".to_owned());
        }
        for rule in prop
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(m) = rule.get("message").and_then(Value::as_str) {
                notes.push(format!("rule: {m}"));
            }
        }
        let description = prop
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        rows.push(format!(
            "| `{field}` | {} | {} | {} |",
            cell(&type_of(prop)),
            cell(description),
            cell(&notes.join("; "))
        ));
        let child_required = required_of(prop);
        walk(prop, &field, &child_required, rows);
        if let Some(items) = prop.get("items") {
            let item_required = required_of(items);
            walk(items, &format!("{field}[]"), &item_required, rows);
        }
    }
}

/// The Markdown reference of every field of every CRD.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Resource reference\n\nGenerated from the CRD schemas by `sso-operator reference`; do not edit.\n",
    );
    for crd in super::crds() {
        let version = &crd.spec.versions[0];
        let Some(schema) = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
        else {
            continue;
        };
        out.push_str(&format!(
            "\n## {} (`{}/{}`)\n\n{}\n",
            crd.spec.names.kind,
            crd.spec.group,
            version.name,
            schema
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
        ));
        for rule in schema
            .pointer("/properties/spec/x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(m) = rule.get("message").and_then(Value::as_str) {
                out.push_str(&format!("\n- Rule: {m}"));
            }
        }
        for part in ["spec", "status"] {
            let Some(sub) = schema.pointer(&format!("/properties/{part}")) else {
                continue;
            };
            out.push_str(&format!(
                "\n\n### {part}\n\n| field | type | description | notes |\n| --- | --- | --- | --- |\n"
            ));
            let required = required_of(sub);
            let mut rows = Vec::new();
            walk(sub, part, &required, &mut rows);
            out.push_str(&rows.join("\n"));
            out.push('\n');
        }
    }
    out.push_str(&conditions_section());
    out.push_str(&sign_in_refusals_section());
    out.push_str(&logout_refusals_section());
    out
}

/// One table of documented condition types or reasons.
fn documented_table(heading: &str, column: &str, list: &[Documented]) -> String {
    let mut out =
        format!("\n### {heading}\n\n| {column} | set on | meaning |\n| --- | --- | --- |\n");
    for d in list {
        let doc = d.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            d.value,
            d.kinds.join(", "),
            cell(&doc)
        ));
    }
    out
}

/// Every condition type and reason the controllers can write to `status.conditions`.
fn conditions_section() -> String {
    let mut out = String::from(
        "\n## Conditions\n\n`status.conditions` of every kind holds one entry per type below; `Ready` summarises the others, and its `reason` and `message` are those of the first problem found. `kubectl get idp -o wide`, `kubectl get scimtok -o wide` and `kubectl get oidcc -o wide` show the Ready message.\n",
    );
    out.push_str(&documented_table(
        "Condition types",
        "type",
        conditions::TYPES,
    ));
    out.push_str(&documented_table(
        "Reasons",
        "reason",
        conditions::reason::ALL,
    ));
    out
}

/// Every reason the server can write to `status.signIn.lastFailureReason`.
fn sign_in_refusals_section() -> String {
    let mut out = String::from(
        "\n## Sign-in refusal reasons\n\nWhen the Assertion Consumer Service refuses a sign-in, the browser sees only \"Authentication Failed\" (or \"Invalid RelayState\", \"Duplicate Cookie\"); the IdentityProvider's `status.signIn.lastFailureReason` names one of the reasons below, `status.signIn.lastFailureMessage` gives the details, and `sso_operator_server_sign_ins_total{outcome=\"failure\"}` counts refusals with the same `reason` label. What the service provider checks, and why, is in [security.md](security.md).\n\n| reason | meaning and what to change |\n| --- | --- |\n",
    );
    out.push_str(&reasons_table(
        SignInRefusal::ALL
            .iter()
            .map(|r| (r.reason(), r.description())),
    ));
    out
}

/// Every reason the Single Logout service names when it refuses a message.
fn logout_refusals_section() -> String {
    let mut out = String::from(
        "\n## Single Logout refusal reasons\n\nWhen the Single Logout URL (`/saml/NAMESPACE/NAME/slo`) refuses a LogoutRequest or LogoutResponse, the browser sees \"Sign-Out Failed\" with the details, and the server's log line `Single Logout message refused` names one of the reasons below.\n\n| reason | meaning and what to change |\n| --- | --- |\n",
    );
    out.push_str(&reasons_table(
        LogoutRefusal::ALL
            .iter()
            .map(|r| (r.reason(), r.description())),
    ));
    out
}

/// The rows of a `| reason | meaning and what to change |` table.
fn reasons_table(reasons: impl Iterator<Item = (&'static str, &'static str)>) -> String {
    let mut out = String::new();
    for (reason, description) in reasons {
        let doc = description.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!("| `{reason}` | {} |\n", cell(&doc)));
    }
    out
}
