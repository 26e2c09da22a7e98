use common::soap::SxsUser;
use common::{Error, Verdict};

use crate::harness::*;

fn new_user(id: &str) -> SxsUser {
    SxsUser {
        user_id: id.into(),
        first_name: "New".into(),
        last_name: "User".into(),
        email: "new.user@example.com".into(),
        mobile: "+385991234567".into(),
        address: "Somewhere 1".into(),
    }
}

async fn activate(sim_url: &str, client_id: &str, code: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{sim_url}/sim/activate"))
        .json(&serde_json::json!({"client_id": client_id, "activation_code": code}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The operator's enrolment flow of PROTOCOL.md §1.3, then a login with the new token.
#[tokio::test]
async fn enrol_activate_validate() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    c.create_or_update_user(&new_user("carol")).await.unwrap();
    let sn = c.redistribute_token("carol", 1393, 6).await.unwrap();
    assert!(sn.bytes().all(|b| b.is_ascii_digit()));
    // No code before it is generated.
    let e = c.get_activation_code(&sn).await.unwrap_err();
    assert!(
        matches!(e, Error::Sxs { ref code, .. } if code == "3002"),
        "{e}"
    );
    c.renew_activation_code(&sn).await.unwrap();
    let code = c.get_activation_code(&sn).await.unwrap();
    assert_eq!(code.client_id.len(), 8);
    assert_eq!(code.activation_code.len(), 8);
    // Not yet activated on the phone: never validates.
    let otp = sim.current_otp("carol").unwrap();
    let v = c.validate_otp(&user("carol"), &otp.as_str().into()).await;
    assert!(
        matches!(v, Verdict::Reject { ref code, .. } if code == "2013"),
        "{v:?}"
    );
    let (status, body) = activate(&sim.url(), &code.client_id, &code.activation_code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_sn"], sn.as_str());
    sim.advance_time(30);
    let otp = sim.current_otp("carol").unwrap();
    let v = c.validate_otp(&user("carol"), &otp.as_str().into()).await;
    assert_eq!(v.kind(), "accept", "{v:?}");
}

#[tokio::test]
async fn three_wrong_activation_codes_kill_the_code() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    c.create_or_update_user(&new_user("dave")).await.unwrap();
    let sn = c.redistribute_token("dave", 1393, 6).await.unwrap();
    c.renew_activation_code(&sn).await.unwrap();
    let code = c.get_activation_code(&sn).await.unwrap();
    let wrong = if code.activation_code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..3 {
        let (status, body) = activate(&sim.url(), &code.client_id, wrong).await;
        assert_eq!(status, 403);
        assert_eq!(body["code"], "3001");
    }
    let (status, body) = activate(&sim.url(), &code.client_id, &code.activation_code).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "3002");
    // A new code works again.
    c.renew_activation_code(&sn).await.unwrap();
    let fresh = c.get_activation_code(&sn).await.unwrap();
    let (status, _) = activate(&sim.url(), &fresh.client_id, &fresh.activation_code).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn admin_errors_carry_code_and_message() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let e = c.redistribute_token("nobody", 1393, 6).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "SxS mtmRedistributeToken failed: SxS 2001: Unknown user"
    );
    let e = c.renew_activation_code("999").await.unwrap_err();
    assert!(e.to_string().contains("2002"), "{e}");
    let e = c.create_or_update_user(&new_user("")).await.unwrap_err();
    assert!(e.to_string().contains("1001"), "{e}");
    // Without admin_url nothing is sent.
    let no_admin = common::SxsClient::new(&{
        let mut cfg = config(&[sim.url()], "");
        cfg.sxs.admin_url = None;
        cfg.sxs
    })
    .unwrap();
    let e = no_admin.renew_activation_code("1").await.unwrap_err();
    assert!(e.to_string().contains("sxs.admin_url"), "{e}");
    // Network failures name the server.
    let dead = dead_url().await;
    let e = client(std::slice::from_ref(&dead), "")
        .create_or_update_user(&new_user("x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&dead), "{e}");
}
