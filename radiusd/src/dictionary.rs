//! FreeRADIUS dictionary files: attribute names, numbers, types, vendors and named values.
//!
//! Debian's `freeradius-common` ships `/usr/share/freeradius/dictionary`, which `$INCLUDE`s one
//! file per RFC and per vendor; their format is what every RADIUS administrator already reads.
//! This reads the subset that names attributes we can send: `$INCLUDE`, `VENDOR`,
//! `BEGIN-VENDOR`/`END-VENDOR`, `ATTRIBUTE` and `VALUE`. TLVs, extended attributes (numbers
//! with dots) and vendors whose format is not the usual `1,1` are skipped or marked
//! unsupported, and naming them is a configuration error rather than a wrong encoding.
//!
//! The `radius` crate generates Rust code from dictionaries at build time; operators name
//! vendor attributes at run time, so the few lines of parsing live here.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::packet::{attr, MAX_ATTRIBUTE_VALUE_LEN};

/// Why a dictionary or a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DictionaryError {
    /// A file cannot be read: fix `radius.dictionary` or install `freeradius-common`.
    #[error("cannot read dictionary {file}: {message}")]
    Read { file: String, message: String },
    /// `$INCLUDE` nesting too deep (a loop).
    #[error("dictionary {file}: $INCLUDE nested more than 16 deep")]
    TooDeep { file: String },
    /// No attribute of that name.
    #[error("unknown attribute {0:?} (not in the FreeRADIUS dictionary)")]
    UnknownAttribute(String),
    /// The attribute exists but cannot be sent by sxs-radiusd.
    #[error("attribute {name:?} cannot be sent: {reason}")]
    Unsupported { name: String, reason: String },
    /// The value does not fit the attribute's type.
    #[error("bad value for {name:?} (type {kind}): {reason}")]
    BadValue {
        name: String,
        kind: String,
        reason: String,
    },
}

/// The value type of an attribute, as the dictionary says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrType {
    String,
    Octets,
    Integer,
    Byte,
    Short,
    Integer64,
    Signed,
    Date,
    IpAddr,
    Ipv6Addr,
    /// Any other type (`tlv`, `abinary`, `ether`, …): known but not sendable.
    Other(String),
}

/// One attribute definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrDef {
    pub name: String,
    /// Vendor-Id for a vendor-specific attribute, 0 for a standard one.
    pub vendor: u32,
    /// Attribute number (vendor type for VSAs).
    pub number: u32,
    pub kind: AttrType,
    /// RFC 2868 tagged attribute (`has_tag`).
    pub tagged: bool,
    /// Why it cannot be sent (`encrypt=`, an unusual vendor format), if so.
    pub unsupported: Option<String>,
    /// `VALUE` names, lower-cased.
    values: HashMap<String, u64>,
}

/// A parsed dictionary tree.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    /// By lower-cased name (FreeRADIUS names are case-insensitive).
    by_name: HashMap<String, AttrDef>,
}

#[derive(Debug, Clone, Copy)]
struct VendorInfo {
    id: u32,
    /// Format `1,1` (one-octet type and length), the RFC 2865 §5.26 suggestion.
    standard: bool,
}

struct Loader {
    vendors: HashMap<String, VendorInfo>,
    dict: Dictionary,
    /// Values seen before their attribute (FreeRADIUS allows that within a file tree).
    pending_values: Vec<(String, String, u64)>,
}

impl Dictionary {
    /// Reads `path` and everything it includes.
    pub fn load(path: &Path) -> Result<Dictionary, DictionaryError> {
        let mut l = Loader {
            vendors: HashMap::new(),
            dict: Dictionary::default(),
            pending_values: Vec::new(),
        };
        l.file(path, 0)?;
        for (attr_name, value_name, number) in std::mem::take(&mut l.pending_values) {
            if let Some(a) = l.dict.by_name.get_mut(&attr_name) {
                a.values.entry(value_name).or_insert(number);
            }
        }
        Ok(l.dict)
    }

    /// The definition of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Result<&AttrDef, DictionaryError> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .ok_or_else(|| DictionaryError::UnknownAttribute(name.to_string()))
    }

    /// How many attributes are known.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

impl Loader {
    fn file(&mut self, path: &Path, depth: usize) -> Result<(), DictionaryError> {
        let name = path.display().to_string();
        if depth > 16 {
            return Err(DictionaryError::TooDeep { file: name });
        }
        let text = std::fs::read_to_string(path).map_err(|e| DictionaryError::Read {
            file: name.clone(),
            message: e.to_string(),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut vendor: Option<VendorInfo> = None;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["$INCLUDE", file, ..] => {
                    let p = PathBuf::from(file);
                    self.file(&if p.is_absolute() { p } else { dir.join(p) }, depth + 1)?;
                }
                ["$INCLUDE-", file, ..] => {
                    let p = dir.join(file);
                    if p.exists() {
                        self.file(&p, depth + 1)?;
                    }
                }
                ["VENDOR", vname, number, rest @ ..] => {
                    if let Some(id) = parse_number(number).and_then(|n| u32::try_from(n).ok()) {
                        let standard = rest
                            .iter()
                            .find_map(|f| f.strip_prefix("format="))
                            .is_none_or(|f| f == "1,1");
                        self.vendors
                            .insert(vname.to_ascii_lowercase(), VendorInfo { id, standard });
                    }
                }
                ["BEGIN-VENDOR", vname, ..] => {
                    vendor = self.vendors.get(&vname.to_ascii_lowercase()).copied();
                }
                ["END-VENDOR", ..] => vendor = None,
                ["ATTRIBUTE", aname, number, kind, rest @ ..] => {
                    self.attribute(aname, number, kind, rest, vendor);
                }
                ["VALUE", aname, vname, number, ..] => {
                    if let Some(n) = parse_number(number) {
                        let (a, v) = (aname.to_ascii_lowercase(), vname.to_ascii_lowercase());
                        match self.dict.by_name.get_mut(&a) {
                            Some(def) => {
                                def.values.entry(v).or_insert(n);
                            }
                            None => self.pending_values.push((a, v, n)),
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn attribute(
        &mut self,
        name: &str,
        number: &str,
        kind: &str,
        rest: &[&str],
        block_vendor: Option<VendorInfo>,
    ) {
        // Numbers with dots are TLV members or extended attributes: not sendable here.
        let Some(number) = parse_number(number).and_then(|n| u32::try_from(n).ok()) else {
            return;
        };
        let mut vendor = block_vendor;
        let mut unsupported = None;
        let mut tagged = false;
        for field in rest {
            for flag in field.split(',') {
                match flag {
                    "has_tag" => tagged = true,
                    f if f.starts_with("encrypt=") => {
                        unsupported =
                            Some(format!("it is encrypted ({f}), which is not implemented"))
                    }
                    "concat" | "virtual" | "array" => {
                        unsupported = Some(format!("flag {flag} is not implemented"))
                    }
                    other => {
                        // The old syntax: a vendor name as fourth field.
                        if let Some(v) = self.vendors.get(&other.to_ascii_lowercase()) {
                            vendor = Some(*v);
                        }
                    }
                }
            }
        }
        if let Some(v) = vendor {
            if !v.standard {
                unsupported = Some(format!(
                    "vendor {} uses a non-standard attribute format",
                    v.id
                ));
            }
            if number > 255 {
                return;
            }
        }
        let kind = match kind {
            "string" => AttrType::String,
            "octets" => AttrType::Octets,
            "integer" => AttrType::Integer,
            "byte" => AttrType::Byte,
            "short" => AttrType::Short,
            "integer64" => AttrType::Integer64,
            "signed" => AttrType::Signed,
            "date" => AttrType::Date,
            "ipaddr" => AttrType::IpAddr,
            "ipv6addr" => AttrType::Ipv6Addr,
            other => AttrType::Other(other.to_string()),
        };
        self.dict
            .by_name
            .entry(name.to_ascii_lowercase())
            .or_insert(AttrDef {
                name: name.to_string(),
                vendor: vendor.map_or(0, |v| v.id),
                number,
                kind,
                tagged,
                unsupported,
                values: HashMap::new(),
            });
    }
}

/// What a configuration file gives as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Text(&'a str),
}

impl AttrDef {
    fn bad(&self, reason: impl Into<String>) -> DictionaryError {
        DictionaryError::BadValue {
            name: self.name.clone(),
            kind: self.kind_name(),
            reason: reason.into(),
        }
    }

    fn kind_name(&self) -> String {
        match &self.kind {
            AttrType::String => "string".into(),
            AttrType::Octets => "octets".into(),
            AttrType::Integer => "integer".into(),
            AttrType::Byte => "byte".into(),
            AttrType::Short => "short".into(),
            AttrType::Integer64 => "integer64".into(),
            AttrType::Signed => "signed".into(),
            AttrType::Date => "date".into(),
            AttrType::IpAddr => "ipaddr".into(),
            AttrType::Ipv6Addr => "ipv6addr".into(),
            AttrType::Other(o) => o.clone(),
        }
    }

    /// An integer given as a number or as a `VALUE` name.
    fn integer(&self, v: &Value<'_>, max: u64) -> Result<u64, DictionaryError> {
        let n = match v {
            Value::Int(n) => u64::try_from(*n).map_err(|_| self.bad("must not be negative"))?,
            Value::Text(t) => match self.values.get(&t.to_ascii_lowercase()) {
                Some(n) => *n,
                None => parse_number(t).ok_or_else(|| {
                    let mut names: Vec<&String> = self.values.keys().collect();
                    names.sort();
                    names.truncate(8);
                    self.bad(format!(
                        "{t:?} is neither a number nor a VALUE name of this attribute{}",
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!(" (e.g. {names:?})")
                        }
                    ))
                })?,
            },
        };
        if n > max {
            return Err(self.bad(format!("{n} is larger than {max}")));
        }
        Ok(n)
    }

    /// The value's octets on the wire (without type/length/vendor framing).
    pub fn encode_value(&self, v: &Value<'_>) -> Result<Vec<u8>, DictionaryError> {
        if let Some(reason) = &self.unsupported {
            return Err(DictionaryError::Unsupported {
                name: self.name.clone(),
                reason: reason.clone(),
            });
        }
        let text = |v: &Value<'_>| match v {
            Value::Text(t) => Ok(t.to_string()),
            Value::Int(n) => Ok(n.to_string()),
        };
        let mut out = match &self.kind {
            AttrType::String => {
                let t = text(v)?;
                let mut b = t.into_bytes();
                // A tagged string whose first octet could be read as a tag gets tag 0.
                if self.tagged && b.first().is_some_and(|c| *c <= 0x1f) {
                    b.insert(0, 0);
                }
                b
            }
            AttrType::Octets => {
                let t = text(v)?;
                match t.strip_prefix("0x") {
                    Some(hex) => data_hex(hex).ok_or_else(|| self.bad("0x… must be hex digits"))?,
                    None => t.into_bytes(),
                }
            }
            AttrType::Integer if self.tagged => {
                let n = self.integer(v, 0xff_ffff)?;
                let b = u32::try_from(n).unwrap_or(0).to_be_bytes();
                vec![0, b[1], b[2], b[3]]
            }
            AttrType::Integer | AttrType::Date => {
                let n = self.integer(v, u64::from(u32::MAX))?;
                u32::try_from(n).unwrap_or(0).to_be_bytes().to_vec()
            }
            AttrType::Byte => vec![u8::try_from(self.integer(v, 0xff)?).unwrap_or(0)],
            AttrType::Short => u16::try_from(self.integer(v, 0xffff)?)
                .unwrap_or(0)
                .to_be_bytes()
                .to_vec(),
            AttrType::Integer64 => self.integer(v, u64::MAX)?.to_be_bytes().to_vec(),
            AttrType::Signed => match v {
                Value::Int(n) => i32::try_from(*n)
                    .map_err(|_| self.bad("out of range for a 32-bit signed integer"))?
                    .to_be_bytes()
                    .to_vec(),
                Value::Text(t) => t
                    .parse::<i32>()
                    .map_err(|_| self.bad(format!("{t:?} is not a 32-bit signed integer")))?
                    .to_be_bytes()
                    .to_vec(),
            },
            AttrType::IpAddr => {
                let t = text(v)?;
                t.parse::<Ipv4Addr>()
                    .map_err(|_| self.bad(format!("{t:?} is not an IPv4 address")))?
                    .octets()
                    .to_vec()
            }
            AttrType::Ipv6Addr => {
                let t = text(v)?;
                t.parse::<Ipv6Addr>()
                    .map_err(|_| self.bad(format!("{t:?} is not an IPv6 address")))?
                    .octets()
                    .to_vec()
            }
            AttrType::Other(kind) => {
                return Err(DictionaryError::Unsupported {
                    name: self.name.clone(),
                    reason: format!("type {kind} is not implemented"),
                })
            }
        };
        if out.is_empty() {
            return Err(self.bad("empty values cannot be sent"));
        }
        let limit = if self.vendor == 0 {
            MAX_ATTRIBUTE_VALUE_LEN
        } else {
            MAX_ATTRIBUTE_VALUE_LEN - 6
        };
        if out.len() > limit {
            return Err(self.bad(format!(
                "{} octets; at most {limit} fit in one attribute",
                out.len()
            )));
        }
        out.shrink_to_fit();
        Ok(out)
    }

    /// The attribute as `(type, value)` for the packet encoder: standard attributes as they
    /// are, vendor-specific ones wrapped in a Vendor-Specific (26) attribute.
    pub fn encode(&self, v: &Value<'_>) -> Result<(u8, Vec<u8>), DictionaryError> {
        let value = self.encode_value(v)?;
        self.frame(value)
    }

    /// Frames already encoded value octets (pass-through of upstream attributes).
    pub fn frame(&self, value: Vec<u8>) -> Result<(u8, Vec<u8>), DictionaryError> {
        let number = u8::try_from(self.number).map_err(|_| DictionaryError::Unsupported {
            name: self.name.clone(),
            reason: format!("number {} does not fit in one octet", self.number),
        })?;
        if self.vendor == 0 {
            return Ok((number, value));
        }
        let vlen = u8::try_from(value.len() + 2).map_err(|_| self.bad("too long"))?;
        let mut out = Vec::with_capacity(value.len() + 6);
        out.extend_from_slice(&self.vendor.to_be_bytes());
        out.push(number);
        out.push(vlen);
        out.extend_from_slice(&value);
        Ok((attr::VENDOR_SPECIFIC, out))
    }

    /// Whether a received `(type, value)` attribute is this one; for VSAs, every matching
    /// sub-attribute's value. Used to pass chosen upstream reply attributes through.
    pub fn matches<'a>(&self, attr_type: u8, value: &'a [u8]) -> Vec<&'a [u8]> {
        if self.vendor == 0 {
            return if u32::from(attr_type) == self.number {
                vec![value]
            } else {
                Vec::new()
            };
        }
        if attr_type != attr::VENDOR_SPECIFIC || value.len() < 4 {
            return Vec::new();
        }
        let (id, mut rest) = value.split_at(4);
        if id != self.vendor.to_be_bytes() {
            return Vec::new();
        }
        let mut out = Vec::new();
        while let [t, l, ..] = rest {
            let l = usize::from(*l);
            if l < 2 || l > rest.len() {
                break;
            }
            if u32::from(*t) == self.number {
                if let Some(v) = rest.get(2..l) {
                    out.push(v);
                }
            }
            rest = rest.get(l..).unwrap_or(&[]);
        }
        out
    }
}

fn data_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "/usr/share/freeradius/dictionary";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn own_files_include_vendor_values_and_old_syntax() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "dictionary.acme",
            "VENDOR Acme 99999\nBEGIN-VENDOR Acme\nATTRIBUTE Acme-Role 1 string\nATTRIBUTE Acme-Level 2 integer\nVALUE Acme-Level Gold 3\nEND-VENDOR Acme\nVENDOR Odd 5 format=2,1\nATTRIBUTE Odd-Thing 1 string Odd\n",
        );
        let main = write(
            d.path(),
            "dictionary",
            "# comment\nATTRIBUTE Filter-Id 11 string\nATTRIBUTE Session-Timeout 27 integer\nATTRIBUTE Framed-IP-Address 8 ipaddr\nATTRIBUTE Tunnel-Type 64 integer has_tag\nVALUE Tunnel-Type VLAN 13\nATTRIBUTE User-Password 2 string encrypt=1\n$INCLUDE dictionary.acme\n",
        );
        let dict = Dictionary::load(&main).unwrap();
        assert_eq!(
            dict.get("filter-id")
                .unwrap()
                .encode(&Value::Text("acl"))
                .unwrap(),
            (11, b"acl".to_vec())
        );
        assert_eq!(
            dict.get("Session-Timeout")
                .unwrap()
                .encode(&Value::Int(3600))
                .unwrap(),
            (27, 3600u32.to_be_bytes().to_vec())
        );
        assert_eq!(
            dict.get("Framed-IP-Address")
                .unwrap()
                .encode(&Value::Text("10.1.2.3"))
                .unwrap(),
            (8, vec![10, 1, 2, 3])
        );
        assert_eq!(
            dict.get("Tunnel-Type")
                .unwrap()
                .encode(&Value::Text("VLAN"))
                .unwrap(),
            (64, vec![0, 0, 0, 13])
        );
        let (t, v) = dict
            .get("Acme-Level")
            .unwrap()
            .encode(&Value::Text("gold"))
            .unwrap();
        assert_eq!(t, 26);
        assert_eq!(v, [0, 1, 0x86, 0x9f, 2, 6, 0, 0, 0, 3]);
        let acme = dict.get("Acme-Level").unwrap();
        assert_eq!(acme.matches(26, &v), vec![&[0u8, 0, 0, 3][..]]);
        assert!(acme.matches(26, &[0, 0, 0, 9, 2, 6, 0, 0, 0, 3]).is_empty());
        for (name, value, needle) in [
            ("No-Such", Value::Text("x"), "unknown attribute"),
            ("User-Password", Value::Text("x"), "encrypt"),
            ("Odd-Thing", Value::Text("x"), "non-standard"),
            ("Session-Timeout", Value::Text("soon"), "neither a number"),
            ("Session-Timeout", Value::Int(-1), "negative"),
            ("Framed-IP-Address", Value::Text("10.1.2"), "not an ipv4"),
            ("Acme-Level", Value::Text("platinum"), "acme-level"),
            ("Filter-Id", Value::Text(""), "empty"),
        ] {
            let e = dict
                .get(name)
                .and_then(|d| d.encode(&value))
                .unwrap_err()
                .to_string();
            assert!(e.to_lowercase().contains(needle), "{name}: {e}");
        }
        let long = "x".repeat(254);
        assert!(dict
            .get("Filter-Id")
            .unwrap()
            .encode(&Value::Text(&long))
            .is_err());
    }

    #[test]
    fn missing_include_and_loops_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let main = write(d.path(), "dictionary", "$INCLUDE nope\n");
        let e = Dictionary::load(&main).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let main = write(d.path(), "loop", "$INCLUDE loop\n");
        assert!(matches!(
            Dictionary::load(&main),
            Err(DictionaryError::TooDeep { .. })
        ));
    }

    /// The dictionary Debian ships (freeradius-common), which the end-to-end tests use too.
    #[test]
    fn debian_dictionary() {
        let dict = Dictionary::load(Path::new(DEBIAN)).unwrap();
        assert!(dict.len() > 5000, "{}", dict.len());
        let cisco = dict.get("Cisco-AVPair").unwrap();
        assert_eq!((cisco.vendor, cisco.number), (9, 1));
        assert_eq!(dict.get("Class").unwrap().number, 25);
        assert_eq!(
            dict.get("Service-Type")
                .unwrap()
                .encode(&Value::Text("Framed-User"))
                .unwrap(),
            (6, vec![0, 0, 0, 2])
        );
    }
}
