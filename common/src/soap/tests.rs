use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sxs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Element names and texts, in order, ignoring prefixes and whitespace.
fn shape(xml: &str) -> Element<'_> {
    parse(xml).expect("fixture parses")
}

#[test]
fn validate_otp_envelope_matches_vendor_sample_with_token_sn() {
    let ours = validate_otp_request(&"740627".into(), Some("2000038252"), None, "OTP_APP");
    assert_eq!(shape(&ours), shape(&fixture("validateOtp.request.xml")));
    // Same namespaces and prefixes as the sample.
    assert!(ours.contains("xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\""));
    assert!(ours.contains("xmlns:aut=\"http://authentication.ws.sxs.logos.hr\""));
    assert!(ours.contains("<aut:validateOtpRequest>"));
}

#[test]
fn validate_otp_envelope_matches_vendor_sample_with_user_id() {
    let ours = validate_otp_request(&"740627".into(), None, Some("test_user"), "OTP_APP");
    assert_eq!(
        shape(&ours),
        shape(&fixture("validateOtp.request.userid.xml"))
    );
}

#[test]
fn admin_envelopes_match_vendor_samples() {
    let user = SxsUser {
        user_id: "test_user".into(),
        first_name: "Test".into(),
        last_name: "User".into(),
        email: "test.user@example.com".into(),
        mobile: "+385991234567".into(),
        address: "Address".into(),
    };
    assert_eq!(
        shape(&create_or_update_user_request(&user)),
        shape(&fixture("createOrUpdateSxsUser.request.xml"))
    );
    assert_eq!(
        shape(&redistribute_token_request("new_user", 1393, 6)),
        shape(&fixture("mtmRedistributeToken.request.xml"))
    );
    assert_eq!(
        shape(&renew_activation_code_request("2000038252")),
        shape(&fixture("mtmRenewActivationCode.request.xml"))
    );
    assert_eq!(
        shape(&get_activation_code_request("2000038252")),
        shape(&fixture("mtmGetActivationCode.request.xml"))
    );
}

#[test]
fn values_are_escaped() {
    let xml = validate_otp_request(&"123456".into(), None, Some("a<b>&\"c'"), "OTP_APP");
    let root = parse(&xml).unwrap();
    let uid = root.unique("UserID").unwrap().unwrap();
    assert_eq!(uid.text, "a<b>&\"c'");
}

#[test]
fn reads_success_fixture() {
    assert_eq!(
        read_validate_otp(&fixture("validateOtp.response.ok.xml")),
        Ok(ValidateOtpAnswer::Success(ValidateOtpSuccess {
            token_sn: "2000038252".into(),
            user_id: "test_user".into()
        }))
    );
}

#[test]
fn reads_exception_fixture() {
    assert_eq!(
        read_validate_otp(&fixture("validateOtp.response.wrong-otp.xml")),
        Ok(ValidateOtpAnswer::Failure {
            code: "2010".into(),
            message: "Wrong OTP".into()
        })
    );
}

#[test]
fn reads_fault_fixture() {
    assert_eq!(
        read_validate_otp(&fixture("validateOtp.response.fault.xml")),
        Ok(ValidateOtpAnswer::Failure {
            code: "soap:Server".into(),
            message: "Organization not found".into()
        })
    );
}

#[test]
fn other_prefixes_and_entities_are_fine() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Header/><S:Body>
<a:validateOtpResponse xmlns:a="x"><a:tokenSN>2000038252</a:tokenSN><a:userId>o&apos;brien&#33;</a:userId></a:validateOtpResponse>
</S:Body></S:Envelope>"#;
    assert_eq!(
        read_validate_otp(xml),
        Ok(ValidateOtpAnswer::Success(ValidateOtpSuccess {
            token_sn: "2000038252".into(),
            user_id: "o'brien!".into()
        }))
    );
}

/// Every one of these must be an error: never a success.
#[test]
fn malformed_responses_are_errors() {
    let env = |body: &str| {
        format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{body}</soap:Body></soap:Envelope>"
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("not xml", "Service is alive and well.".into()),
        ("json", "{\"tokenSN\": \"1\"}".into()),
        ("truncated", fixture("validateOtp.response.ok.xml")[..120].to_string()),
        ("no envelope", "<validateOtpResponse><tokenSN>1</tokenSN></validateOtpResponse>".into()),
        ("no body", "<soap:Envelope xmlns:soap=\"x\"><soap:Header/></soap:Envelope>".into()),
        ("two bodies", "<soap:Envelope xmlns:soap=\"x\"><soap:Body/><soap:Body><r><tokenSN>1</tokenSN></r></soap:Body></soap:Envelope>".into()),
        ("empty body", env("")),
        ("empty response", env("<ns2:validateOtpResponse/>")),
        ("no token", env("<r><userId>alice</userId></r>")),
        ("empty token", env("<r><tokenSN></tokenSN><userId>a</userId></r>")),
        ("non-decimal token", env("<r><tokenSN>20000x</tokenSN></r>")),
        ("two tokens", env("<r><tokenSN>1</tokenSN><tokenSN>2</tokenSN></r>")),
        ("two user ids", env("<r><tokenSN>1</tokenSN><userId>a</userId><userId>b</userId></r>")),
        ("nested token", env("<r><tokenSN><x>1</x></tokenSN></r>")),
        ("exception without code", env("<r><tokenSN>1</tokenSN><exception><exceptionMessage>m</exceptionMessage></exception></r>")),
        ("empty exception code", env("<r><exception><exceptionCode></exceptionCode></exception></r>")),
        ("fault without code", env("<soap:Fault><faultstring>x</faultstring></soap:Fault>")),
        ("two faults", env("<soap:Fault><faultcode>a</faultcode></soap:Fault><soap:Fault><faultcode>b</faultcode></soap:Fault>")),
        ("mismatched tags", env("<r><tokenSN>1</userId></r>")),
        ("unknown entity", env("<r><tokenSN>1&foo;</tokenSN></r>")),
        ("doctype", format!("<!DOCTYPE x [<!ENTITY e \"1\">]>{}", env("<r><tokenSN>&e;</tokenSN></r>"))),
        ("two roots", format!("{}{}", env("<r><tokenSN>1</tokenSN></r>"), env(""))),
        ("text after root", format!("{}garbage", env("<r><tokenSN>1</tokenSN></r>"))),
        ("deep", env(&format!("{}<tokenSN>1</tokenSN>{}", "<a>".repeat(40), "</a>".repeat(40)))),
        ("wrong root", "<Envelopes><Body><tokenSN>1</tokenSN></Body></Envelopes>".into()),
    ];
    for (name, xml) in cases {
        match read_validate_otp(&xml) {
            Err(_) => {}
            Ok(ValidateOtpAnswer::Failure { .. }) if name.starts_with("exception") => {
                panic!("{name}: must be malformed, not a failure")
            }
            other => panic!("{name}: expected an error, got {other:?}"),
        }
    }
}

/// An exception wins over a token serial in the same answer: never an accept.
#[test]
fn exception_beside_token_is_a_failure() {
    let xml = "<soap:Envelope xmlns:soap=\"x\"><soap:Body><r><tokenSN>1</tokenSN><exception><exceptionCode>2010</exceptionCode><exceptionMessage>Wrong OTP</exceptionMessage></exception></r></soap:Body></soap:Envelope>";
    assert!(matches!(
        read_validate_otp(xml),
        Ok(ValidateOtpAnswer::Failure { .. })
    ));
    let bare = "<soap:Envelope xmlns:soap=\"x\"><soap:Body><r><tokenSN>1</tokenSN><exceptionCode>2012</exceptionCode></r></soap:Body></soap:Envelope>";
    assert_eq!(
        read_validate_otp(bare),
        Ok(ValidateOtpAnswer::Failure {
            code: "2012".into(),
            message: String::new()
        })
    );
}

/// Random bytes and mutations of the fixtures never panic and never produce a success that
/// was not in the input.
#[test]
fn mutated_inputs_never_panic() {
    let base = fixture("validateOtp.response.wrong-otp.xml").into_bytes();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..(next() % 6 + 1) {
            let i = (next() as usize) % b.len();
            match next() % 3 {
                0 => b[i] = next() as u8,
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, b"<>&/;"[(next() % 5) as usize]),
            }
        }
        if let Ok(text) = std::str::from_utf8(&b) {
            if let Ok(ValidateOtpAnswer::Success(_)) = read_validate_otp(text) {
                panic!("a mutated exception answer became a success: {text}");
            }
        }
    }
}

#[test]
fn requests_are_written_exactly() {
    assert_eq!(
        escape("a<b>&\"c'\u{e9}&&x"),
        "a&lt;b&gt;&amp;&quot;c&apos;\u{e9}&amp;&amp;x"
    );
    assert_eq!(escape(""), "");
    assert_eq!(escape("plain"), "plain");
    let xml = validate_otp_request(
        &"123456".into(),
        Some("2000038252"),
        Some("u<1>"),
        "OTP_APP",
    );
    assert_eq!(
        xml.as_str(),
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:aut=\"http://authentication.ws.sxs.logos.hr\">\n  <soapenv:Header/>\n  \
         <soapenv:Body>\n    <aut:validateOtpRequest>\n      <otp>123456</otp>\n      \
         <TokenSN>2000038252</TokenSN>\n      <applicationProfileName>OTP_APP</applicationProfileName>\n      \
         <UserID>u&lt;1&gt;</UserID>\n    </aut:validateOtpRequest>\n  </soapenv:Body>\n</soapenv:Envelope>\n"
    );
}

#[test]
fn names_are_read_in_place_and_kept_as_copies() {
    let xml = "<s:Envelope xmlns:s=\"urn:x\"><s:Body><r:Answer xmlns:r=\"urn:y\">\
               <tokenSN> 42 </tokenSN><w\u{e9}ird>a&amp;b</w\u{e9}ird></r:Answer></s:Body></s:Envelope>";
    let root = parse(xml).expect("parses");
    let mut names = Vec::new();
    fn walk<'a>(e: &'a Element<'a>, out: &mut Vec<&'a Cow<'a, str>>) {
        out.push(&e.name);
        e.children.iter().for_each(|c| walk(c, out));
    }
    walk(&root, &mut names);
    let shown: Vec<&str> = names.iter().map(|n| n.as_ref()).collect();
    assert_eq!(
        shown,
        ["Envelope", "Body", "Answer", "tokenSN", "w\u{e9}ird"]
    );
    // Every local name is the document's own text, not a copy of it.
    let range = xml.as_bytes().as_ptr_range();
    for name in &names {
        assert!(matches!(name, Cow::Borrowed(_)), "{name} copied");
        assert!(range.contains(&name.as_ptr()), "{name} not in the document");
    }
    // What outlives the document is an equal, owned tree.
    let kept = {
        let text = xml.to_string();
        let parsed = parse(&text).expect("parses");
        parsed.into_owned()
    };
    assert_eq!(kept, root);
    assert!(matches!(kept.name, Cow::Owned(_)));
    assert_eq!(kept.unique("w\u{e9}ird").unwrap().unwrap().text, "a&b");
    assert_eq!(kept.unique("tokenSN").unwrap().unwrap().text, "42");
}

#[test]
fn a_name_not_from_the_document_is_copied() {
    let xml = "<a><b/></a>";
    let elsewhere = String::from("b");
    assert!(matches!(name_in(xml, elsewhere.as_bytes()), Cow::Owned(_)));
    assert_eq!(name_in(xml, elsewhere.as_bytes()), "b");
    assert!(matches!(
        name_in(xml, &xml.as_bytes()[1..2]),
        Cow::Borrowed("a")
    ));
    // Not on a character boundary of the document: copied (lossily, as before).
    let accented = "<\u{e9}/>";
    assert_eq!(name_in(accented, &accented.as_bytes()[1..2]), "\u{fffd}");
    // Past the end, or before the start: copied.
    let longer = "<a/>xyz";
    assert!(matches!(
        name_in(&longer[..4], &longer.as_bytes()[4..7]),
        Cow::Owned(_)
    ));
    assert!(matches!(
        name_in(&longer[4..], &longer.as_bytes()[1..2]),
        Cow::Owned(_)
    ));
}
