//! The PAM module argument parser on arbitrary argument vectors (NUL-separated): never a
//! panic, and the values it keeps stay in their documented ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_sxs::args::{Args, MAX_DELAY_MS, MAX_PROMPTS};

fuzz_target!(|data: &[u8]| {
    let raw: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let a = Args::parse(&raw);
    assert!((1..=MAX_PROMPTS).contains(&a.prompts));
    assert!((4..=10).contains(&a.otp_digits));
    assert!(a.config.is_absolute());
    assert!(a.fail_delay.as_millis() <= u128::from(MAX_DELAY_MS));
    assert!(a.deny_floor.as_millis() <= u128::from(MAX_DELAY_MS));
    let _ = a.prompt_text(None);
});
