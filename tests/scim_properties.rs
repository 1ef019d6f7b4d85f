//! Property tests of the SCIM filter parser and PATCH engine: arbitrary input never panics,
//! and well-formed input behaves as the protocol says.

use proptest::prelude::*;
use serde_json::{Value, json};
use sso_operator::scim::{filter, patch};
use sso_operator::store::{CmpOp, Column, Predicate};

fn attribute() -> impl Strategy<Value = (&'static str, Column)> {
    prop_oneof![
        Just(("userName", Column::UserName)),
        Just(("USERNAME", Column::UserName)),
        Just(("externalId", Column::ExternalId)),
        Just(("id", Column::Id)),
    ]
}

fn operator() -> impl Strategy<Value = (&'static str, CmpOp)> {
    prop_oneof![
        Just(("eq", CmpOp::Eq)),
        Just(("NE", CmpOp::Ne)),
        Just(("co", CmpOp::Co)),
        Just(("Sw", CmpOp::Sw)),
        Just(("ew", CmpOp::Ew)),
        Just(("gt", CmpOp::Gt)),
        Just(("le", CmpOp::Le)),
    ]
}

/// A filter string with the predicate it must translate to.
fn comparison() -> impl Strategy<Value = (String, Predicate)> {
    (attribute(), operator(), "[a-zA-Z0-9@._%\\-\"\\\\ é]{0,20}").prop_map(
        |((attr, col), (op, cmp), value)| {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
            (
                format!("{attr} {op} \"{escaped}\""),
                Predicate::Compare(col, cmp, sso_operator::store::Value::Text(value)),
            )
        },
    )
}

fn filter_tree() -> impl Strategy<Value = (String, Predicate)> {
    comparison().prop_recursive(4, 32, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|((a, pa), (b, pb))| (
                format!("({a}) and ({b})"),
                Predicate::And(Box::new(pa), Box::new(pb))
            )),
            (inner.clone(), inner.clone()).prop_map(|((a, pa), (b, pb))| (
                format!("({a}) or ({b})"),
                Predicate::Or(Box::new(pa), Box::new(pb))
            )),
            inner.prop_map(|(a, pa)| (format!("not ({a})"), Predicate::Not(Box::new(pa)))),
        ]
    })
}

/// Predicates up to associativity of `and`/`or` (the parser flattens chains).
#[derive(Debug, PartialEq)]
enum Canonical {
    And(Vec<Canonical>),
    Or(Vec<Canonical>),
    Not(Box<Canonical>),
    Leaf(String),
}

fn canonical(p: &Predicate) -> Canonical {
    fn collect(p: &Predicate, and: bool, out: &mut Vec<Canonical>) {
        match (p, and) {
            (Predicate::And(a, b), true) | (Predicate::Or(a, b), false) => {
                collect(a, and, out);
                collect(b, and, out);
            }
            _ => out.push(canonical(p)),
        }
    }
    match p {
        Predicate::And(..) => {
            let mut v = Vec::new();
            collect(p, true, &mut v);
            Canonical::And(v)
        }
        Predicate::Or(..) => {
            let mut v = Vec::new();
            collect(p, false, &mut v);
            Canonical::Or(v)
        }
        Predicate::Not(a) => Canonical::Not(Box::new(canonical(a))),
        other => Canonical::Leaf(format!("{other:?}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_filter_text_never_panics(text in "\\PC{0,80}") {
        let _ = filter::parse(&text, filter::Resource::User);
        let _ = filter::parse(&text, filter::Resource::Group);
    }

    #[test]
    fn filter_like_text_never_panics(text in "[a-zA-Z \\[\\]\\(\\)\"\\.:]{0,60}") {
        if let Err(e) = filter::parse(&text, filter::Resource::User) {
            prop_assert_eq!(e.status, 400);
            prop_assert_eq!(e.scim_type, Some("invalidFilter"));
        }
    }

    #[test]
    fn generated_filters_translate_exactly((text, expected) in filter_tree()) {
        let got = filter::parse(&text, filter::Resource::User);
        prop_assert_eq!(got.as_ref().ok().map(canonical), Some(canonical(&expected)), "filter {}", text);
    }

    #[test]
    fn arbitrary_patch_operations_never_panic(
        op in prop_oneof![Just("add"), Just("Replace"), Just("remove"), Just("REMOVE"), Just("bogus")],
        path in prop_oneof![
            Just(None),
            Just(Some("active".to_owned())),
            Just(Some("name.givenName".to_owned())),
            Just(Some("emails[type eq \"work\"].value".to_owned())),
            Just(Some("members[value eq \"x\"]".to_owned())),
            Just(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value".to_owned())),
            Just(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned())),
            "\\PC{0,30}".prop_map(Some),
        ],
        value in prop_oneof![
            Just(json!(null)), Just(json!(true)), Just(json!("False")), Just(json!(3)),
            Just(json!({ "active": false, "name.familyName": "X" })),
            Just(json!([{ "value": "x" }])), Just(json!({ "value": "v", "type": "work" })),
        ],
    ) {
        let mut resource = json!({ "userName": "a", "active": true, "name": { "givenName": "A" }, "emails": [{ "type": "work", "value": "a@x" }], "members": [{ "value": "x" }] });
        let mut operation = json!({ "op": op, "value": value });
        if let Some(p) = &path {
            operation["path"] = Value::String(p.clone());
        }
        let body = json!({ "schemas": [patch::PATCH_OP], "Operations": [operation] });
        if let Ok(ops) = patch::parse_request(&body)
            && patch::apply(&mut resource, &ops).is_ok()
        {
            let _ = patch::coerce_booleans(&mut resource);
        }
    }

    #[test]
    fn pathless_replace_then_read_returns_the_value(key in "[a-z]{1,10}", value in "[ -~]{0,20}") {
        prop_assume!(key != "schemas");
        let mut resource = json!({ "userName": "a" });
        let body = json!({ "schemas": [patch::PATCH_OP], "Operations": [{ "op": "replace", "value": { key.clone(): value.clone() } }] });
        let ops = patch::parse_request(&body).unwrap();
        patch::apply(&mut resource, &ops).unwrap();
        prop_assert_eq!(&resource[&key], &Value::String(value));
    }
}
