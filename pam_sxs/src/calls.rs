//! The SxS calls one authentication may make, as a trait: `common`'s client is the real
//! implementation, the scripted fake of the unit tests another.
#![forbid(unsafe_code)]

use std::future::Future;

use common::sms::SendLimiter;
use common::{Identity, Secret, SmsSent, SxsClient, Verdict};

/// What `pam_sxs` asks of SxS. Every call is single use: none is ever retried once it may have
/// reached SxS (that rule lives in `common`).
pub trait SxsCalls: Send + Sync {
    /// `validateOtp` of an mToken OTP.
    fn validate_otp(&self, id: &Identity, otp: &Secret) -> impl Future<Output = Verdict> + Send;
    /// Sends an SMS code within the per-user limit of `limiter`.
    fn send_sms(
        &self,
        id: &Identity,
        limiter: &dyn SendLimiter,
        now_unix: u64,
    ) -> impl Future<Output = SmsSent> + Send;
    /// `validateOtp` of a code sent by SMS (the SMS application profile).
    fn validate_sms(&self, id: &Identity, code: &Secret) -> impl Future<Output = Verdict> + Send;
    /// Dynamic linking: the MAC the user's app computed over `input`.
    fn validate_mac(
        &self,
        id: &Identity,
        input: &str,
        mac: &Secret,
    ) -> impl Future<Output = Verdict> + Send;
}

impl SxsCalls for SxsClient {
    fn validate_otp(&self, id: &Identity, otp: &Secret) -> impl Future<Output = Verdict> + Send {
        SxsClient::validate_otp(self, id, otp)
    }

    fn send_sms(
        &self,
        id: &Identity,
        limiter: &dyn SendLimiter,
        now_unix: u64,
    ) -> impl Future<Output = SmsSent> + Send {
        self.send_sms_otp(id, limiter, now_unix)
    }

    fn validate_sms(&self, id: &Identity, code: &Secret) -> impl Future<Output = Verdict> + Send {
        self.validate_otp_with_profile(
            id,
            code,
            &self.settings().methods.send_sms.application_profile,
        )
    }

    fn validate_mac(
        &self,
        id: &Identity,
        input: &str,
        mac: &Secret,
    ) -> impl Future<Output = Verdict> + Send {
        SxsClient::validate_mac(self, id, input, mac)
    }
}
