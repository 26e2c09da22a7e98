//! Reply attributes: what an Access-Accept tells the NAS, per group (`[[radius.reply]]`), and
//! which upstream attributes pass through (`first_factor.radius.pass_attributes`).
//!
//! Names and types come from the FreeRADIUS dictionary ([`crate::dictionary`]); everything is
//! resolved and encoded when the configuration is loaded, so a typo is a configuration error
//! naming the key, and a request only copies bytes.

use common::config::{ReplyRule, ReplyValue};

use crate::dictionary::{AttrDef, Dictionary, Value};

/// Encoded `(type, value)` attributes for the packet encoder.
pub type Attributes = Vec<(u8, Vec<u8>)>;

/// The compiled `[[radius.reply]]` rules.
#[derive(Debug, Clone, Default)]
pub struct ReplyAttributes {
    rules: Vec<(String, Attributes)>,
}

impl ReplyAttributes {
    /// Resolves every rule against `dict`. Errors name the key (`radius.reply[0].attributes.X`).
    pub fn compile(rules: &[ReplyRule], dict: &Dictionary) -> Result<Self, (String, String)> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let mut attrs = Vec::with_capacity(rule.attributes.len());
            for (name, value) in &rule.attributes {
                let key = format!("radius.reply[{i}].attributes.{name}");
                let value = match value {
                    ReplyValue::Int(n) => Value::Int(*n),
                    ReplyValue::Text(t) => Value::Text(t),
                };
                let encoded = dict
                    .get(name)
                    .and_then(|d| d.encode(&value))
                    .map_err(|e| (key, e.to_string()))?;
                attrs.push(encoded);
            }
            out.push((rule.group.clone(), attrs));
        }
        Ok(Self { rules: out })
    }

    /// The attributes for a user in `groups`: every matching rule's, in file order.
    pub fn for_groups(&self, groups: &[String]) -> Attributes {
        self.rules
            .iter()
            .filter(|(g, _)| groups.iter().any(|u| u == g))
            .flat_map(|(_, a)| a.iter().cloned())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The upstream attributes to copy, resolved.
#[derive(Debug, Clone, Default)]
pub struct PassThrough {
    defs: Vec<AttrDef>,
}

impl PassThrough {
    /// Resolves `names`; errors name the key (`first_factor.radius.pass_attributes[i]`).
    pub fn compile(names: &[String], dict: &Dictionary) -> Result<Self, (String, String)> {
        let mut defs = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            let key = format!("first_factor.radius.pass_attributes[{i}]");
            let def = dict.get(n).map_err(|e| (key.clone(), e.to_string()))?;
            if let Some(reason) = &def.unsupported {
                return Err((key, format!("{n:?} cannot be passed through: {reason}")));
            }
            defs.push(def.clone());
        }
        Ok(Self { defs })
    }

    /// The chosen attributes found in `received`, re-framed for our answer.
    pub fn select(&self, received: &[(u8, &[u8])]) -> Attributes {
        let mut out = Vec::new();
        for def in &self.defs {
            for (t, v) in received {
                for value in def.matches(*t, v) {
                    if let Ok(a) = def.frame(value.to_vec()) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn rules_compile_and_select_by_group() {
        let dict = Dictionary::load(Path::new("/usr/share/freeradius/dictionary")).unwrap();
        let rules = vec![
            ReplyRule {
                group: "vpn-admins".into(),
                attributes: vec![
                    ("Class".into(), ReplyValue::Text("admins".into())),
                    (
                        "Cisco-AVPair".into(),
                        ReplyValue::Text("ip:addr-pool=admins".into()),
                    ),
                ],
            },
            ReplyRule {
                group: "staff".into(),
                attributes: vec![("Session-Timeout".into(), ReplyValue::Int(3600))],
            },
        ];
        let r = ReplyAttributes::compile(&rules, &dict).unwrap();
        let a = r.for_groups(&["vpn-admins".into(), "staff".into()]);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0], (25, b"admins".to_vec()));
        assert_eq!(a[1].0, 26);
        assert!(r.for_groups(&["other".into()]).is_empty());
        let bad = vec![ReplyRule {
            group: "g".into(),
            attributes: vec![("Sesion-Timeout".into(), ReplyValue::Int(1))],
        }];
        let (key, msg) = ReplyAttributes::compile(&bad, &dict).unwrap_err();
        assert_eq!(key, "radius.reply[0].attributes.Sesion-Timeout");
        assert!(msg.contains("unknown attribute"), "{msg}");

        let p = PassThrough::compile(&["Filter-Id".into(), "Cisco-AVPair".into()], &dict).unwrap();
        let vsa = dict
            .get("Cisco-AVPair")
            .unwrap()
            .encode(&Value::Text("x=1"))
            .unwrap();
        let received = [(11u8, b"acl".to_vec()), (18, b"hi".to_vec()), vsa.clone()];
        let received: Vec<(u8, &[u8])> = received.iter().map(|(t, v)| (*t, v.as_slice())).collect();
        let got = p.select(&received);
        assert_eq!(got, vec![(11, b"acl".to_vec()), vsa]);
        assert!(PassThrough::compile(&["Nope".into()], &dict).is_err());
    }

    /// The shipped example's `[[radius.reply]]` tables resolve against Debian's dictionary.
    #[test]
    fn shipped_example_reply_attributes_resolve() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sxs.toml"))
                .unwrap();
        let doc: toml::Table = text.parse().unwrap();
        let replies = doc["radius"]["reply"].as_array().unwrap();
        let dict = Dictionary::load(Path::new("/usr/share/freeradius/dictionary")).unwrap();
        let mut n = 0;
        for r in replies {
            let rule = ReplyRule {
                group: r["group"].as_str().unwrap().into(),
                attributes: r["attributes"]
                    .as_table()
                    .unwrap()
                    .iter()
                    .flat_map(|(k, v)| {
                        let vs = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
                        vs.into_iter().map(move |v| {
                            (
                                k.clone(),
                                match v.as_integer() {
                                    Some(i) => ReplyValue::Int(i),
                                    None => ReplyValue::Text(v.as_str().unwrap().into()),
                                },
                            )
                        })
                    })
                    .collect(),
            };
            n += ReplyAttributes::compile(&[rule], &dict)
                .unwrap()
                .for_groups(&[r["group"].as_str().unwrap().into()])
                .len();
        }
        assert_eq!(n, 7);
        let pass: Vec<String> = doc["first_factor"]["radius"]["pass_attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(PassThrough::compile(&pass, &dict).is_ok());
    }
}
