//! A simulator on port 0 and a client configured for it.

use common::config::{Config, LoadOptions};
use common::sim::{self, SeedUser, SimHandle, SimOptions};
use common::{Identity, SxsClient};

pub const ALICE_SN: &str = "2000038252";
pub const ALICE_SECRET: &str = "JBSWY3DPEHPK3PXP";

pub fn seed() -> Vec<SeedUser> {
    vec![
        SeedUser {
            id: "alice".into(),
            token_sn: Some(ALICE_SN.into()),
            secret: Some(ALICE_SECRET.into()),
            mobile: Some("+385991234567".into()),
            sms: Some(true),
            ..SeedUser::default()
        },
        SeedUser {
            id: "sam".into(),
            mobile: Some("+385981112233".into()),
            sms: Some(true),
            sms_token_sn: Some("3000000001".into()),
            ..SeedUser::default()
        },
        SeedUser {
            id: "bob".into(),
            token_sn: Some("2000038253".into()),
            ..SeedUser::default()
        },
        SeedUser {
            id: "tokenless".into(),
            ..SeedUser::default()
        },
    ]
}

pub async fn sim() -> SimHandle {
    sim_with(SimOptions {
        seed: seed(),
        ..SimOptions::default()
    })
    .await
}

pub async fn sim_with(opts: SimOptions) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::start(listener, opts).unwrap()
}

/// A loopback URL nothing listens on.
pub async fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

pub fn config(servers: &[String], extra: &str) -> Config {
    let list = servers
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let admin = servers
        .last()
        .map(|s| format!("admin_url = \"{s}/SxSAdminWS\"\n"))
        .unwrap_or_default();
    let mut text = format!("[sxs]\nservers = [{list}]\n{admin}organization_id = \"1\"\n");
    for (key, default) in [("timeout", "2s"), ("connect_timeout", "500ms")] {
        if !extra.lines().any(|l| l.starts_with(&format!("{key} "))) {
            text.push_str(&format!("{key} = \"{default}\"\n"));
        }
    }
    // Last, so a table it opens (`[sxs.methods.…]`) takes nothing of the above.
    text.push_str(extra);
    Config::from_toml_str(
        &text,
        "<test>",
        LoadOptions {
            env_overrides: false,
        },
    )
    .unwrap()
}

pub fn client(servers: &[String], extra: &str) -> SxsClient {
    SxsClient::new(&config(servers, extra).sxs).unwrap()
}

pub fn user(id: &str) -> Identity {
    Identity {
        user: id.into(),
        token_sn: None,
        user_id: Some(id.into()),
    }
}
