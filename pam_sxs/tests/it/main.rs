//! Integration tests of `pam_sxs.so` against the real peers: libpam through pamtester, OpenSSH's
//! sshd driven by the real ssh client, and sudo. They run as root, install nothing, and FAIL
//! (they do not skip) when a tool is missing: `.ci/run` installs pamtester, bubblewrap,
//! openssh-server, openssh-client, sshpass and sudo.
//!
//! Nothing here touches `/etc/pam.d/sshd`, `/etc/pam.d/sudo` or `common-*`: pamtester and sshd
//! run under bubblewrap with a private directory bound onto `/etc/pam.d` and a socket of this
//! binary bound onto `/dev/log`; sudo (setuid, so not under bubblewrap) gets its own
//! `/etc/pam.d/sxs-test-sudo-*` file and `/etc/sudoers.d/sxs-test-*` file, removed in `Drop`.
//! Every line logged to that socket during the run is checked for every OTP and password that
//! was typed (`log_check`).

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
mod log_check;
mod pamtester;
mod push;
mod sms_mac;
mod sshd;
mod sudo;
