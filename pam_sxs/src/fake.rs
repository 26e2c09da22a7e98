//! Test doubles: a scripted PAM handle whose `Drop` asserts every expected prompt and message
//! happened (and that no typed answer reached the log), and a scripted OTP backend.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use common::sms::{Refusal, SendLimiter};
use common::{codes, Config, Identity, Secret, SmsSent, Verdict};

use crate::auth::Backend;
use crate::calls::SxsCalls;
use crate::code::{PamCode, PamResult};
use crate::pam::{Item, Level, Pam, Style};

#[derive(Debug)]
pub enum Step {
    Prompt {
        text: String,
        answer: Result<String, PamCode>,
    },
    Message {
        style: Style,
        text: String,
    },
}

#[derive(Debug)]
pub struct FakePam {
    pub user: Result<String, PamCode>,
    pub items: HashMap<Item, String>,
    pub authtok: Option<Secret>,
    pub set_authtok_calls: Vec<String>,
    pub script: VecDeque<Step>,
    pub logs: Vec<(Level, String)>,
    /// Everything "typed" (answers and a preset authtok): must never be logged.
    pub typed: Vec<String>,
    /// Every `pam_fail_delay` requested.
    pub fail_delays: Vec<std::time::Duration>,
    /// Every pause requested (not waited).
    pub pauses: Vec<std::time::Duration>,
}

impl FakePam {
    pub fn new(user: &str) -> Self {
        let mut items = HashMap::new();
        items.insert(Item::Service, "sshd".to_string());
        items.insert(Item::RHost, "192.0.2.7".to_string());
        Self {
            user: Ok(user.to_string()),
            items,
            authtok: None,
            set_authtok_calls: Vec::new(),
            script: VecDeque::new(),
            logs: Vec::new(),
            typed: Vec::new(),
            fail_delays: Vec::new(),
            pauses: Vec::new(),
        }
    }

    pub fn service(mut self, name: &str) -> Self {
        self.items.insert(Item::Service, name.to_string());
        self
    }

    pub fn item(mut self, item: Item, value: &str) -> Self {
        self.items.insert(item, value.to_string());
        self
    }

    pub fn with_authtok(mut self, tok: &str) -> Self {
        self.typed.push(tok.to_string());
        self.authtok = Some(Secret::from(tok));
        self
    }

    pub fn prompt(mut self, text: &str, answer: &str) -> Self {
        self.typed.push(answer.to_string());
        self.script.push_back(Step::Prompt {
            text: text.into(),
            answer: Ok(answer.into()),
        });
        self
    }

    /// The MAC input `shown` as an info message, then the MAC prompt answered with `mac`.
    pub fn mac_prompt(self, shown: &str, mac: &str) -> Self {
        self.message(
            Style::Info,
            &format!("Type {shown} into the mToken app and enter the MAC it shows."),
        )
        .prompt(&format!("MAC for {shown}: "), mac)
    }

    pub fn prompt_fails(mut self, text: &str, code: PamCode) -> Self {
        self.script.push_back(Step::Prompt {
            text: text.into(),
            answer: Err(code),
        });
        self
    }

    pub fn message(mut self, style: Style, text: &str) -> Self {
        self.script.push_back(Step::Message {
            style,
            text: text.into(),
        });
        self
    }

    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|(l, s)| format!("{l:?} {s}\n"))
            .collect()
    }

    /// The one decision line (asserts there is exactly one per attempt made).
    pub fn decisions(&self) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|(_, l)| l.starts_with("decision "))
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

impl Pam for FakePam {
    fn user(&mut self) -> PamResult<String> {
        self.user.clone()
    }

    fn item(&self, item: Item) -> Option<String> {
        self.items.get(&item).cloned()
    }

    fn authtok(&self) -> PamResult<Option<Secret>> {
        Ok(self.authtok.clone())
    }

    fn set_authtok(&mut self, token: &Secret) -> PamResult<()> {
        let text = token.expose_str().unwrap_or("<non-utf8>").to_string();
        self.set_authtok_calls.push(text);
        self.authtok = Some(token.clone());
        Ok(())
    }

    fn prompt(&mut self, text: &str) -> PamResult<Secret> {
        match self.script.pop_front() {
            Some(Step::Prompt { text: want, answer }) => {
                assert_eq!(text, want, "prompt text");
                answer.map(Secret::from)
            }
            other => panic!("unexpected prompt {text:?}; the script expected {other:?}"),
        }
    }

    fn message(&mut self, style: Style, text: &str) -> PamResult<()> {
        match self.script.pop_front() {
            Some(Step::Message {
                style: want_style,
                text: want,
            }) => {
                assert_eq!((style, text), (want_style, want.as_str()), "message");
                Ok(())
            }
            other => panic!("unexpected message {text:?}; the script expected {other:?}"),
        }
    }

    fn log(&mut self, level: Level, line: &str) {
        self.logs.push((level, line.to_string()));
    }

    fn fail_delay(&mut self, delay: std::time::Duration) -> PamResult<()> {
        self.fail_delays.push(delay);
        Ok(())
    }

    fn pause(&mut self, duration: std::time::Duration) {
        self.pauses.push(duration);
    }
}

impl Drop for FakePam {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        assert!(
            self.script.is_empty(),
            "expected prompts/messages that never happened: {:?}",
            self.script
        );
        let logs = self.log_text();
        for secret in self.typed.iter().filter(|s| s.len() >= 4) {
            assert!(
                !logs.contains(secret.as_str()),
                "a typed secret reached the log:\n{logs}"
            );
        }
    }
}

/// A backend answering from a script, recording what it was asked: validate calls (OTP, SMS
/// code, MAC) take the next scripted verdict, SMS sends the next scripted send result.
#[derive(Debug, Clone)]
pub struct Scripted {
    verdicts: Arc<Mutex<VecDeque<Verdict>>>,
    sends: Arc<Mutex<VecDeque<SmsSent>>>,
    /// (identity, the value typed) of every validate call.
    pub seen: Arc<Mutex<Vec<(Identity, String)>>>,
    /// Every call, in order: `otp`, `send`, `sms`, `mac:INPUT`.
    pub calls: Arc<Mutex<Vec<String>>>,
    pub fail_build: bool,
    /// The clock (unix seconds) and the nonce the module gets.
    pub now: u64,
    pub nonce: [u8; 16],
}

impl Scripted {
    pub fn new(verdicts: impl IntoIterator<Item = Verdict>) -> Self {
        Self {
            verdicts: Arc::new(Mutex::new(verdicts.into_iter().collect())),
            sends: Arc::default(),
            seen: Arc::default(),
            calls: Arc::default(),
            fail_build: false,
            now: 1_700_000_000,
            nonce: [7; 16],
        }
    }

    /// Scripted SMS sends: `Ok(masked)` is SxS taking it, `Err(verdict)` a refusal.
    pub fn with_sends(
        self,
        sends: impl IntoIterator<Item = Result<Option<&'static str>, Verdict>>,
    ) -> Self {
        *self.sends.lock().unwrap() = sends
            .into_iter()
            .map(|s| match s {
                Ok(masked) => SmsSent {
                    verdict: accept(),
                    masked_mobile: masked.map(str::to_string),
                },
                Err(verdict) => SmsSent {
                    verdict,
                    masked_mobile: None,
                },
            })
            .collect();
        self
    }

    pub fn otps(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, o)| o.clone())
            .collect()
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn validate(&self, kind: String, identity: &Identity, value: &Secret) -> Verdict {
        self.calls.lock().unwrap().push(kind);
        self.seen.lock().unwrap().push((
            identity.clone(),
            value.expose_str().unwrap_or_default().to_string(),
        ));
        self.verdicts
            .lock()
            .unwrap()
            .pop_front()
            .expect("a validate call the script did not expect")
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        if std::thread::panicking() || Arc::strong_count(&self.verdicts) > 1 {
            return;
        }
        let left = self.verdicts.lock().unwrap();
        assert!(
            left.is_empty(),
            "scripted verdicts never asked for: {left:?}"
        );
        let sends = self.sends.lock().unwrap();
        assert!(
            sends.is_empty(),
            "scripted sends never asked for: {sends:?}"
        );
    }
}

impl Backend for Scripted {
    type Calls = Scripted;
    fn build(&self, _cfg: &Config) -> common::Result<Scripted> {
        if self.fail_build {
            return Err(common::Error::HttpClient("scripted build failure".into()));
        }
        Ok(self.clone())
    }

    fn now_unix(&self) -> u64 {
        self.now
    }

    fn nonce(&self) -> Result<[u8; 16], String> {
        Ok(self.nonce)
    }
}

impl SxsCalls for Scripted {
    fn validate_otp(
        &self,
        identity: &Identity,
        otp: &Secret,
    ) -> impl Future<Output = Verdict> + Send {
        let v = self.validate("otp".into(), identity, otp);
        async move { v }
    }

    fn send_sms(
        &self,
        _identity: &Identity,
        limiter: &dyn SendLimiter,
        now_unix: u64,
    ) -> impl Future<Output = SmsSent> + Send {
        self.calls.lock().unwrap().push("send".into());
        // Like the real client: the limiter first; refused (or broken) means no send.
        let sent = match limiter.try_acquire("scripted-user", now_unix) {
            Ok(()) => self
                .sends
                .lock()
                .unwrap()
                .pop_front()
                .expect("an SMS send the script did not expect"),
            Err(Refusal::Limited { .. }) => SmsSent {
                verdict: reject(codes::LOCAL_SMS_RATE_LIMITED),
                masked_mobile: None,
            },
            Err(Refusal::Broken(cause)) => SmsSent {
                verdict: Verdict::Unavailable { cause },
                masked_mobile: None,
            },
        };
        async move { sent }
    }

    fn validate_sms(
        &self,
        identity: &Identity,
        code: &Secret,
    ) -> impl Future<Output = Verdict> + Send {
        let v = self.validate("sms".into(), identity, code);
        async move { v }
    }

    fn validate_mac(
        &self,
        identity: &Identity,
        input: &str,
        mac: &Secret,
    ) -> impl Future<Output = Verdict> + Send {
        let v = self.validate(format!("mac:{input}"), identity, mac);
        async move { v }
    }
}

pub fn accept() -> Verdict {
    Verdict::Accept {
        token_sn: "2000038252".into(),
        user_id: "alice".into(),
    }
}

pub fn reject(code: &str) -> Verdict {
    Verdict::Reject {
        code: code.into(),
        message: "no".into(),
    }
}

pub fn unavailable() -> Verdict {
    Verdict::Unavailable {
        cause: "connect refused".into(),
    }
}
