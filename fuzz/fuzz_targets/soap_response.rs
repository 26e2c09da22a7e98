//! The SOAP response readers on arbitrary text: an error or an answer, never a panic; a
//! success always carries a decimal token serial.
#![no_main]

use common::soap::{read_send_sms, read_validate_otp, ValidateOtpAnswer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ValidateOtpAnswer::Success(ok)) = read_validate_otp(text) {
        assert!(!ok.token_sn.is_empty());
        assert!(ok.token_sn.bytes().all(|b| b.is_ascii_digit()));
    }
    let _ = read_send_sms(text, "mobile");
});
