//! The observer seam: what the client reports for each call and each server (its state when
//! first known and at each change), against the simulator and a dead address.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::SxsObserver;

use crate::harness::*;

#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<(String, String, String)>>,
    servers: Mutex<Vec<(String, bool)>>,
}

impl SxsObserver for Recorder {
    fn sxs_call(&self, method: &'static str, server: &str, verdict: &'static str, _: Duration) {
        self.calls
            .lock()
            .unwrap()
            .push((method.into(), server.into(), verdict.into()));
    }
    fn sxs_server(&self, server: &str, up: bool) {
        self.servers.lock().unwrap().push((server.into(), up));
    }
}

#[tokio::test]
async fn every_attempt_is_reported_with_its_server_and_verdict() {
    let sim = sim().await;
    let dead = dead_url().await;
    let rec = Arc::new(Recorder::default());
    let c = client(&[dead.clone(), sim.url()], "").with_observer(rec.clone());
    let otp = sim.current_otp("alice").unwrap();
    // Dead first: one unavailable attempt there, then the accept at the simulator.
    assert_eq!(
        c.validate_otp(&user("alice"), &otp.as_str().into())
            .await
            .kind(),
        "accept"
    );
    // The replay: the dead server is in back-off, so the simulator is tried first.
    assert_eq!(
        c.validate_otp(&user("alice"), &otp.as_str().into())
            .await
            .kind(),
        "reject"
    );
    let d = format!("{dead}/");
    let s = format!("{}/", sim.url());
    let v = |m: &str, srv: &str, k: &str| (m.to_string(), srv.to_string(), k.to_string());
    assert_eq!(
        *rec.calls.lock().unwrap(),
        vec![
            v("validateOtp", &d, "unavailable"),
            v("validateOtp", &s, "accept"),
            v("validateOtp", &s, "reject"),
        ]
    );
    // Each server's state when it is first known and when it changes, not at every call.
    assert_eq!(
        *rec.servers.lock().unwrap(),
        vec![(d.clone(), false), (s.clone(), true)]
    );
    // A new observer is told again.
    let again = Arc::new(Recorder::default());
    let c = client(&[sim.url()], "").with_observer(again.clone());
    let otp = sim.current_otp("bob").unwrap();
    c.validate_otp(&user("bob"), &otp.as_str().into()).await;
    assert_eq!(*again.servers.lock().unwrap(), vec![(s, true)]);
}

#[tokio::test]
async fn a_server_that_goes_away_is_reported_down_once() {
    let sim = sim().await;
    let s = format!("{}/", sim.url());
    let rec = Arc::new(Recorder::default());
    let c = client(&[sim.url()], "").with_observer(rec.clone());
    let otp = sim.current_otp("alice").unwrap();
    c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    drop(sim);
    for _ in 0..2 {
        assert_eq!(
            c.validate_otp(&user("alice"), &"123456".into())
                .await
                .kind(),
            "unavailable"
        );
    }
    assert_eq!(
        *rec.servers.lock().unwrap(),
        vec![(s.clone(), true), (s, false)]
    );
}
