//! `pam_sxs.so`: the PAM doorway. Filled in by the PAM module issue.
#![forbid(unsafe_code)]
