//! SOAP 1.1 envelopes of PROTOCOL.md §1, built and read.
//!
//! Requests are built to the structure of the vendor's samples (`shared/fixtures/sxs/`).
//! Responses are read into a small tree of elements by *local* name (namespace prefixes are
//! ignored, as the response wrappers are not documented) and interpreted strictly: anything
//! that is not clearly a success is not a success.

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::secret::Secret;

/// SOAP envelope namespace.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// `validateOtp` namespace (prefix `aut`).
pub const NS_AUTH: &str = "http://authentication.ws.sxs.logos.hr";
/// User administration namespace.
pub const NS_USER: &str = "http://impl.user.webservice.sxsadmin.sxs.asseco.hr";
/// Mobile token management namespace.
pub const NS_MTM: &str = "http://impl.mtm.webservice.sxsadmin.sxs.asseco.hr";

/// Largest response body read (a real SxS answer is well under 4 KiB).
pub const MAX_BODY: usize = 64 * 1024;
const MAX_DEPTH: usize = 32;
const MAX_ELEMENTS: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Building requests

/// Escapes text for an XML element.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Appends `text` to `out`, escaped for an XML element: runs without a special character
/// are copied whole.
fn escape_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        let (plain, special) = rest.split_at(at);
        out.push_str(plain);
        let mut chars = special.chars();
        out.push_str(match chars.next() {
            Some('&') => "&amp;",
            Some('<') => "&lt;",
            Some('>') => "&gt;",
            Some('"') => "&quot;",
            _ => "&apos;",
        });
        rest = chars.as_str();
    }
    out.push_str(rest);
}

fn envelope_open(out: &mut String, ns_prefix: &str, ns: &str) {
    for piece in [
        "<soapenv:Envelope xmlns:soapenv=\"",
        NS_SOAP,
        "\" xmlns:",
        ns_prefix,
        "=\"",
        ns,
        "\">\n  <soapenv:Header/>\n  <soapenv:Body>\n",
    ] {
        out.push_str(piece);
    }
}

fn envelope_close(out: &mut String) {
    out.push_str("  </soapenv:Body>\n</soapenv:Envelope>\n");
}

fn envelope(ns_prefix: &str, ns: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 256);
    envelope_open(&mut out, ns_prefix, ns);
    out.push_str(body);
    envelope_close(&mut out);
    out
}

/// `<name>value</name>` on a line of its own, indented.
fn leaf(out: &mut String, indent: usize, name: &str, value: &str) {
    out.extend(std::iter::repeat_n(' ', indent));
    for piece in ["<", name, ">"] {
        out.push_str(piece);
    }
    escape_into(out, value);
    for piece in ["</", name, ">\n"] {
        out.push_str(piece);
    }
}

/// The identity and profile every authentication request ends with, in the vendor samples'
/// order: `TokenSN`, `applicationProfileName`, `UserID`.
fn identity_tail(out: &mut String, token_sn: Option<&str>, profile: &str, user_id: Option<&str>) {
    if let Some(sn) = token_sn {
        leaf(out, 6, "TokenSN", sn);
    }
    leaf(out, 6, "applicationProfileName", profile);
    if let Some(uid) = user_id {
        leaf(out, 6, "UserID", uid);
    }
}

/// The `validateOtp` request. The OTP is written straight into a zeroizing buffer.
///
/// Element order follows the vendor's samples: `otp`, `TokenSN`, `applicationProfileName`,
/// then `UserID`.
pub fn validate_otp_request(
    otp: &Secret,
    token_sn: Option<&str>,
    user_id: Option<&str>,
    application_profile: &str,
) -> zeroize::Zeroizing<String> {
    // One buffer, sized so that it never grows (growing would leave a copy of the OTP in
    // the freed block): the fixed text is ~330 bytes, the variable parts at most 6 times
    // their length once escaped.
    let variable = otp.len()
        + token_sn.map_or(0, str::len)
        + user_id.map_or(0, str::len)
        + application_profile.len();
    let mut out = zeroize::Zeroizing::new(String::with_capacity(512 + 6 * variable));
    envelope_open(&mut out, "aut", NS_AUTH);
    out.push_str("    <aut:validateOtpRequest>\n      <otp>");
    // The OTP is checked to be digits before this is called; escape anyway.
    escape_into(&mut out, otp.expose_str().unwrap_or(""));
    out.push_str("</otp>\n");
    identity_tail(&mut out, token_sn, application_profile, user_id);
    out.push_str("    </aut:validateOtpRequest>\n");
    envelope_close(&mut out);
    out
}

/// The `sendSms` request of `[sxs.methods.send_sms]` (names configurable; PROTOCOL §1.4 gives
/// no wire format): `TokenSN`, `applicationProfileName`, `UserID`, as in validateOtp.
pub fn send_sms_request(
    method: &crate::config::SxsMethod,
    token_sn: Option<&str>,
    user_id: Option<&str>,
) -> String {
    let mut body = String::with_capacity(256);
    let _ = writeln!(body, "    <aut:{}>", method.request);
    identity_tail(&mut body, token_sn, &method.application_profile, user_id);
    let _ = writeln!(body, "    </aut:{}>", method.request);
    envelope("aut", &method.namespace, &body)
}

/// The `validateMac` request of `[sxs.methods.validate_mac]`: the MAC and its input, then
/// `TokenSN`, `applicationProfileName`, `UserID`. The MAC is written into a zeroizing buffer.
pub fn validate_mac_request(
    method: &crate::config::SxsMethod,
    mac: &Secret,
    input: &str,
    token_sn: Option<&str>,
    user_id: Option<&str>,
) -> zeroize::Zeroizing<String> {
    let mut body = zeroize::Zeroizing::new(String::with_capacity(320));
    let _ = writeln!(body, "    <aut:{}>", method.request);
    let mac_text = zeroize::Zeroizing::new(escape(mac.expose_str().unwrap_or("")));
    let _ = writeln!(
        body,
        "      <{0}>{1}</{0}>",
        method.mac_element,
        mac_text.as_str()
    );
    leaf(&mut body, 6, &method.input_element, input);
    identity_tail(&mut body, token_sn, &method.application_profile, user_id);
    let _ = writeln!(body, "    </aut:{}>", method.request);
    zeroize::Zeroizing::new(envelope("aut", &method.namespace, &body))
}

/// The `startPush` request of `[sxs.methods.start_push]`: the data shown on the phone and
/// signed by the token (`input_element`), the callback location, then `TokenSN`,
/// `applicationProfileName`, `UserID`.
pub fn start_push_request(
    method: &crate::config::SxsMethod,
    input: &str,
    callback: &str,
    token_sn: Option<&str>,
    user_id: Option<&str>,
) -> zeroize::Zeroizing<String> {
    let mut body = zeroize::Zeroizing::new(String::with_capacity(512));
    let _ = writeln!(body, "    <aut:{}>", method.request);
    leaf(&mut body, 6, &method.input_element, input);
    leaf(&mut body, 6, &method.callback_element, callback);
    identity_tail(&mut body, token_sn, &method.application_profile, user_id);
    let _ = writeln!(body, "    </aut:{}>", method.request);
    zeroize::Zeroizing::new(envelope("aut", &method.namespace, &body))
}

/// Reads an answer that carries no data: a response element and no fault or exception is
/// `Ok(None)`; a fault or exception `Ok(Some((code, message)))`; anything else `Err`.
pub fn read_ack(xml: &str) -> Result<Option<(String, String)>, String> {
    let root = parse(xml)?;
    match outcome(&root)? {
        Outcome::Fault { code, message } | Outcome::Exception { code, message } => {
            Ok(Some((code, message)))
        }
        Outcome::Body(body) if body.children.is_empty() => {
            Err("the SOAP Body is empty: no response element".into())
        }
        Outcome::Body(_) => Ok(None),
    }
}

/// What a `sendSms` answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendSmsAnswer {
    /// Sent; the mobile number SxS sent it to, when the answer names one (`mobile_element`).
    Sent {
        mobile: Option<String>,
    },
    Failure {
        code: String,
        message: String,
    },
}

/// Reads a `sendSms` response. Success is a Body holding a response element and no fault or
/// exception; the mobile number is optional (at most one). Anything else is `Err`.
pub fn read_send_sms(xml: &str, mobile_element: &str) -> Result<SendSmsAnswer, String> {
    let root = parse(xml)?;
    match outcome(&root)? {
        Outcome::Fault { code, message } | Outcome::Exception { code, message } => {
            Ok(SendSmsAnswer::Failure { code, message })
        }
        Outcome::Body(body) => {
            if body.children.is_empty() {
                return Err("the SOAP Body is empty: no response element".into());
            }
            let mobile = body
                .unique(mobile_element)?
                .map(|m| m.text.clone())
                .filter(|m| !m.is_empty());
            Ok(SendSmsAnswer::Sent { mobile })
        }
    }
}

/// A user as `createOrUpdateSxsUser` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SxsUser {
    pub user_id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub mobile: String,
    pub address: String,
}

/// The `createOrUpdateSxsUser` request.
pub fn create_or_update_user_request(user: &SxsUser) -> String {
    let mut body = String::new();
    body.push_str("    <impl:createOrUpdateSxsUser>\n      <sxsUserWS>\n");
    leaf(&mut body, 8, "address", &user.address);
    leaf(&mut body, 8, "email", &user.email);
    leaf(&mut body, 8, "firstName", &user.first_name);
    leaf(&mut body, 8, "userId", &user.user_id);
    leaf(&mut body, 8, "lastName", &user.last_name);
    leaf(&mut body, 8, "mobile", &user.mobile);
    body.push_str("      </sxsUserWS>\n    </impl:createOrUpdateSxsUser>\n");
    envelope("impl", NS_USER, &body)
}

/// The `mtmRedistributeTokenRequest`: a new token for `user_id`.
pub fn redistribute_token_request(
    user_id: &str,
    token_profile_id: u32,
    service_ids: u32,
) -> String {
    let mut body = String::new();
    body.push_str("    <impl:mtmRedistributeTokenRequest>\n      <sxsUserWS>\n");
    leaf(&mut body, 8, "userId", user_id);
    body.push_str("      </sxsUserWS>\n");
    leaf(
        &mut body,
        6,
        "tokenProfileId",
        &token_profile_id.to_string(),
    );
    leaf(&mut body, 6, "serviceIds", &service_ids.to_string());
    body.push_str("    </impl:mtmRedistributeTokenRequest>\n");
    envelope("impl", NS_MTM, &body)
}

/// The `mtmRenewActivationCodeRequest` with `generateNew=true`.
pub fn renew_activation_code_request(token_sn: &str) -> String {
    let mut body = String::new();
    body.push_str("    <impl:mtmRenewActivationCodeRequest>\n");
    leaf(&mut body, 6, "tokensn", token_sn);
    leaf(&mut body, 6, "generateNew", "true");
    body.push_str("    </impl:mtmRenewActivationCodeRequest>\n");
    envelope("impl", NS_MTM, &body)
}

/// The `mtmGetActivationCodeRequest` with `formatId=1`.
pub fn get_activation_code_request(token_sn: &str) -> String {
    let mut body = String::new();
    body.push_str("    <impl:mtmGetActivationCodeRequest>\n");
    leaf(&mut body, 6, "tokensn", token_sn);
    leaf(&mut body, 6, "formatId", "1");
    body.push_str("    </impl:mtmGetActivationCodeRequest>\n");
    envelope("impl", NS_MTM, &body)
}

// ---------------------------------------------------------------------------------------------
// Reading XML

/// One element: local name, its own text (trimmed), children. The name is borrowed from the
/// document parsed (no allocation per element); [`Element::into_owned`] keeps it longer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element<'a> {
    pub name: Cow<'a, str>,
    pub text: String,
    pub children: Vec<Element<'a>>,
}

impl<'x> Element<'x> {
    /// The first direct child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element<'x>> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element with its names copied, independent of the document it was read from.
    pub fn into_owned(self) -> Element<'static> {
        Element {
            name: Cow::Owned(self.name.into_owned()),
            text: self.text,
            children: self.children.into_iter().map(Element::into_owned).collect(),
        }
    }

    /// Every descendant (not self) with this local name, depth first.
    pub fn descendants<'a>(&'a self, name: &str) -> Vec<&'a Element<'x>> {
        let mut out = Vec::new();
        fn walk<'a, 'x>(e: &'a Element<'x>, name: &str, out: &mut Vec<&'a Element<'x>>) {
            for c in &e.children {
                if c.name == name {
                    out.push(c);
                }
                walk(c, name, out);
            }
        }
        walk(self, name, &mut out);
        out
    }

    /// The one descendant with this name: `Ok(None)` when absent, `Err` when there are several.
    pub fn unique(&self, name: &str) -> Result<Option<&Element<'x>>, String> {
        // Counted without collecting them: this runs several times per SxS answer.
        fn walk<'a, 'x>(
            e: &'a Element<'x>,
            name: &str,
            first: &mut Option<&'a Element<'x>>,
            n: &mut usize,
        ) {
            for c in &e.children {
                if c.name == name {
                    *n += 1;
                    first.get_or_insert(c);
                }
                walk(c, name, first, n);
            }
        }
        let (mut first, mut n) = (None, 0);
        walk(self, name, &mut first, &mut n);
        match n {
            0 | 1 => Ok(first),
            n => Err(format!("{n} <{name}> elements where one was expected")),
        }
    }
}

/// `text.trim()`, in the same buffer.
fn trim_in_place(text: &mut String) {
    let end = text.trim_end().len();
    text.truncate(end);
    let start = text.len() - text.trim_start().len();
    text.drain(..start);
}

/// `name`, which quick-xml read out of `xml`, as the slice of `xml` it is; a copy if it is
/// not one (quick-xml gives slices of a string it reads from, but that is not its promise).
fn name_in<'a>(xml: &'a str, name: &[u8]) -> Cow<'a, str> {
    let start = (name.as_ptr() as usize).wrapping_sub(xml.as_ptr() as usize);
    match xml.get(start..start.wrapping_add(name.len())) {
        Some(within) if std::ptr::eq(within.as_ptr(), name.as_ptr()) => Cow::Borrowed(within),
        _ => Cow::Owned(String::from_utf8_lossy(name).into_owned()),
    }
}

/// Parses a whole XML document into its root element. Refuses DTDs, unknown entities,
/// more than one root, deep nesting and very many elements.
pub fn parse(xml: &str) -> Result<Element<'_>, String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element<'_>> = Vec::with_capacity(8);
    let mut root: Option<Element<'_>> = None;
    let mut count = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.error_position()
            )
        })?;
        match event {
            Event::Start(e) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err("XML too deep or too large".into());
                }
                if root.is_some() {
                    return Err("more than one root element".into());
                }
                stack.push(Element {
                    name: name_in(xml, e.local_name().as_ref()),
                    ..Element::default()
                });
            }
            Event::Empty(e) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err("XML too large".into());
                }
                let el = Element {
                    name: name_in(xml, e.local_name().as_ref()),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err("more than one root element".into()),
                }
            }
            Event::End(_) => {
                let mut el = stack.pop().ok_or("unbalanced end tag")?;
                trim_in_place(&mut el.text);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| format!("bad text encoding: {e}"))?;
                match stack.last_mut() {
                    // Leading white space is trimmed at the end tag anyway: not stored (the
                    // indentation between elements would cost an allocation per element).
                    Some(el) if el.text.is_empty() && text.trim().is_empty() => {}
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| format!("bad CDATA encoding: {e}"))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match &*r {
                        b"lt" => '<',
                        b"gt" => '>',
                        b"amp" => '&',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => {
                            return Err(format!(
                                "unknown entity &{};",
                                String::from_utf8_lossy(other)
                            ))
                        }
                    },
                    Err(e) => return Err(format!("bad character reference: {e}")),
                };
                match stack.last_mut() {
                    Some(el) => el.text.push(ch),
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::DocType(_) => return Err("a DTD is not allowed in a SOAP message".into()),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("document ends inside an element".into());
    }
    root.ok_or_else(|| "empty document".to_string())
}

/// The `Body` of a SOAP envelope.
pub fn body<'a, 'x>(root: &'a Element<'x>) -> Result<&'a Element<'x>, String> {
    if root.name != "Envelope" {
        return Err(format!(
            "root element is <{}>, not a SOAP Envelope",
            root.name
        ));
    }
    let mut bodies = root.children.iter().filter(|c| c.name == "Body");
    match (bodies.next(), bodies.next()) {
        (Some(b), None) => Ok(b),
        (None, _) => Err("SOAP Envelope has no Body".into()),
        (Some(_), Some(_)) => Err("SOAP Envelope has more than one Body".into()),
    }
}

/// What a SOAP response says, before any operation-specific meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A SOAP Fault: `faultcode`, `faultstring`.
    Fault { code: String, message: String },
    /// An SxS exception object: `exceptionCode`, `exceptionMessage`.
    Exception { code: String, message: String },
    /// Neither: the Body, for the operation to read.
    Body(&'a Element<'a>),
}

/// Classifies a parsed response. A fault or exception without a code is malformed.
pub fn outcome<'a>(root: &'a Element<'a>) -> Result<Outcome<'a>, String> {
    let body = body(root)?;
    if let Some(fault) = body.unique("Fault")? {
        let code = fault.child("faultcode").map(|c| c.text.clone());
        let message = fault
            .child("faultstring")
            .map(|c| c.text.clone())
            .unwrap_or_default();
        return match code {
            Some(code) if !code.is_empty() => Ok(Outcome::Fault { code, message }),
            _ => Err("SOAP Fault without a faultcode".into()),
        };
    }
    if let Some(exc) = body.unique("exception")? {
        let code = exc.unique("exceptionCode")?.map(|c| c.text.clone());
        let message = exc
            .unique("exceptionMessage")?
            .map(|c| c.text.clone())
            .unwrap_or_default();
        return match code {
            Some(code) if !code.is_empty() => Ok(Outcome::Exception { code, message }),
            _ => Err("SxS exception without an exceptionCode".into()),
        };
    }
    // An exceptionCode outside an <exception> wrapper still means failure.
    if let Some(code) = body.unique("exceptionCode")? {
        let message = body
            .unique("exceptionMessage")?
            .map(|c| c.text.clone())
            .unwrap_or_default();
        if code.text.is_empty() {
            return Err("empty exceptionCode".into());
        }
        return Ok(Outcome::Exception {
            code: code.text.clone(),
            message,
        });
    }
    Ok(Outcome::Body(body))
}

/// The successful content of a `validateOtp` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateOtpSuccess {
    pub token_sn: String,
    pub user_id: String,
}

/// Interpretation of a `validateOtp` response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidateOtpAnswer {
    Success(ValidateOtpSuccess),
    Failure { code: String, message: String },
}

/// Reads a `validateOtp` response. Success needs exactly one non-empty `tokenSN` (decimal)
/// and no fault or exception; `userId` is optional, at most one. Anything else is `Err`.
pub fn read_validate_otp(xml: &str) -> Result<ValidateOtpAnswer, String> {
    let root = parse(xml)?;
    match outcome(&root)? {
        Outcome::Fault { code, message } | Outcome::Exception { code, message } => {
            Ok(ValidateOtpAnswer::Failure { code, message })
        }
        Outcome::Body(body) => {
            let sn = body
                .unique("tokenSN")?
                .ok_or("response has neither a tokenSN nor an exception")?;
            if sn.text.is_empty() || !sn.text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("tokenSN {:?} is not a decimal serial", sn.text));
            }
            if !sn.children.is_empty() {
                return Err("tokenSN has child elements".into());
            }
            let user_id = body
                .unique("userId")?
                .map(|u| u.text.clone())
                .unwrap_or_default();
            Ok(ValidateOtpAnswer::Success(ValidateOtpSuccess {
                token_sn: sn.text.clone(),
                user_id,
            }))
        }
    }
}

#[cfg(test)]
mod tests;
