//! The configuration loader on arbitrary text: a validated config or an error, never a panic.
//! A secret from the file never appears in the error message.
#![no_main]

use common::config::{Config, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::from_toml_str(
        text,
        "/etc/sxs/sxs.toml",
        LoadOptions {
            env_overrides: false,
        },
    )
    .map_err(|e| e.to_string());
});
