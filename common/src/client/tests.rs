use super::*;
use crate::config::{Config, LoadOptions};

#[derive(Debug)]
struct ManualClock(Mutex<Instant>);

impl ManualClock {
    fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap();
        *t += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

fn settings() -> SxsSettings {
    Config::from_toml_str(
        "[sxs]\nservers = [\"http://a:1\", \"http://b:2\", \"http://c:3\"]\norganization_id = \"1\"\ndown_backoff = \"30s\"\n",
        "<t>",
        LoadOptions { env_overrides: false },
    )
    .unwrap()
    .sxs
}

#[test]
fn a_down_server_is_tried_last_until_its_backoff_ends() {
    let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
    let c = SxsClient::with_clock(&settings(), clock.clone()).unwrap();
    assert_eq!(c.server_order(), vec![0, 1, 2]);
    c.mark(0, true);
    assert_eq!(c.server_order(), vec![1, 2, 0]);
    c.mark(2, true);
    assert_eq!(c.server_order(), vec![1, 0, 2]);
    assert!(c.any_server_up());
    c.mark(1, true);
    assert!(!c.any_server_up());
    // All down: configured order.
    assert_eq!(c.server_order(), vec![0, 1, 2]);
    clock.advance(Duration::from_secs(31));
    assert_eq!(c.server_order(), vec![0, 1, 2]);
    assert!(c.any_server_up());
    c.mark(0, true);
    clock.advance(Duration::from_secs(10));
    c.mark(0, false);
    assert_eq!(c.server_order(), vec![0, 1, 2]);
}

fn url() -> reqwest::Url {
    reqwest::Url::parse("http://sxs:442/SxSWS/SxS5Authentication").unwrap()
}

const OK: &str = "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><r><tokenSN>2000038252</tokenSN><userId>alice</userId></r></soap:Body></soap:Envelope>";

#[test]
fn only_a_200_success_for_the_identity_asked_is_an_accept() {
    let alice = Identity {
        user: "alice".into(),
        token_sn: None,
        user_id: Some("alice".into()),
    };
    assert_eq!(interpret_validate(200, OK, &alice, &url()).kind(), "accept");
    // Case of the user id does not matter; another user does.
    let upper = Identity {
        user_id: Some("ALICE".into()),
        ..alice.clone()
    };
    assert_eq!(interpret_validate(200, OK, &upper, &url()).kind(), "accept");
    let bob = Identity {
        user: "bob".into(),
        token_sn: None,
        user_id: Some("bob".into()),
    };
    assert_eq!(
        interpret_validate(200, OK, &bob, &url()).kind(),
        "unavailable"
    );
    let other_sn = Identity {
        user: "alice".into(),
        token_sn: Some("2000038253".into()),
        user_id: None,
    };
    assert_eq!(
        interpret_validate(200, OK, &other_sn, &url()).kind(),
        "unavailable"
    );
    for status in [201, 204, 302, 500] {
        assert_eq!(
            interpret_validate(status, OK, &alice, &url()).kind(),
            "unavailable",
            "status {status}"
        );
    }
    assert_eq!(
        interpret_validate(502, "<html>Bad gateway</html>", &alice, &url()),
        Verdict::Unavailable {
            cause: "http://sxs:442/SxSWS/SxS5Authentication: HTTP 502 without a SOAP answer".into()
        }
    );
    let fault = "<soap:Envelope xmlns:soap=\"x\"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Organization not found</faultstring></soap:Fault></soap:Body></soap:Envelope>";
    assert_eq!(
        interpret_validate(500, fault, &alice, &url()).kind(),
        "reject"
    );
}

#[test]
fn activation_code_split() {
    let a = ActivationCode::parse("1234567887654321").unwrap();
    assert_eq!(a.client_id, "12345678");
    assert_eq!(a.activation_code, "87654321");
    assert!(!format!("{a:?}").contains("87654321"));
    assert!(ActivationCode::parse("123456788765432").is_none());
    assert!(ActivationCode::parse("12345678876543x1").is_none());
}
