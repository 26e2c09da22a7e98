//! The FFI file: the six `pam_sm_*` entry points and the two libpam calls pam-bindings does
//! not wrap. Every `unsafe` block of the crate is here.
//!
//! Why own entry points rather than `pam::pam_hooks!`: its panic guard answers `PAM_ABORT`
//! (we fail closed with `PAM_SYSTEM_ERR`, as the module's contract says), and the hooks must
//! see the raw `flags` as libpam passed them. The handle type, items, conversation and secret
//! buffers are pam-bindings'. What it lacks: setting `PAM_AUTHTOK` (its `AuthTok` item cannot
//! be built outside the crate, so `set_item_str` cannot be used for it) and `pam_syslog`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use common::Secret;
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO};
use pam::conv::Conv;
use pam::items::{AuthTok, RHost, RUser, Service, Tty};
use pam::module::PamHandle;
use zeroize::Zeroizing;

use crate::args::Args;
use crate::auth::{self, Flags, SxsBackend};
use crate::code::{PamCode, PamResult};
use crate::logging;
use crate::pam::{Item, Level, Pam, Style};

/// `PAM_AUTHTOK` in `<security/_pam_types.h>`.
const PAM_AUTHTOK: c_int = 6;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_fail_delay(pamh: *mut PamHandle, musec_delay: std::ffi::c_uint) -> c_int;
}

/// Runs a hook body; a panic becomes `PAM_SYSTEM_ERR` (fail closed) and never unwinds into C.
fn guard(body: impl FnOnce() -> PamCode) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => code.to_raw(),
        Err(payload) => {
            // Dropping a panic payload can itself panic: contain that too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload))).map_err(std::mem::forget);
            PamCode::SystemErr.to_raw()
        }
    }
}

/// Copies libpam's `argc`/`argv` into owned strings (not UTF-8 → lossily, which then does not
/// match any known argument and is reported as unknown).
///
/// # Safety
/// When `argc > 0`, `argv` must point to `argc` pointers, each null or a NUL-terminated
/// string, valid for the duration of the call (libpam guarantees this for hooks).
unsafe fn collect_args(argc: c_int, argv: *const *const c_char) -> Vec<String> {
    let Ok(n) = usize::try_from(argc) else {
        return Vec::new();
    };
    if n == 0 || argv.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller guarantees `argv` holds `argc` readable pointers.
    let ptrs = unsafe { std::slice::from_raw_parts(argv, n) };
    ptrs.iter()
        .filter(|p| !p.is_null())
        // SAFETY: each non-null entry is a NUL-terminated string valid for the call.
        .map(|&p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        .collect()
}

/// The real handle.
struct RealPam<'a> {
    handle: &'a mut PamHandle,
    syslog_socket: Option<PathBuf>,
}

fn cstr_item(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

impl RealPam<'_> {
    fn conv(&self) -> PamResult<Conv<'_>> {
        match self.handle.get_item::<Conv<'_>>() {
            Ok(Some(conv)) => Ok(conv),
            Ok(None) => Err(PamCode::ConvErr),
            Err(code) => Err(PamCode::from_raw(code as c_int)),
        }
    }
}

impl Pam for RealPam<'_> {
    fn user(&mut self) -> PamResult<String> {
        self.handle
            .get_user(None)
            .map_err(|code| PamCode::from_raw(code as c_int))
    }

    fn item(&self, item: Item) -> Option<String> {
        let h = &*self.handle;
        match item {
            Item::Service => h
                .get_item::<Service<'_>>()
                .ok()
                .flatten()
                .map(|i| cstr_item(i.0)),
            Item::RHost => h
                .get_item::<RHost<'_>>()
                .ok()
                .flatten()
                .map(|i| cstr_item(i.0)),
            Item::Tty => h
                .get_item::<Tty<'_>>()
                .ok()
                .flatten()
                .map(|i| cstr_item(i.0)),
            Item::RUser => h
                .get_item::<RUser<'_>>()
                .ok()
                .flatten()
                .map(|i| cstr_item(i.0)),
        }
    }

    fn authtok(&self) -> PamResult<Option<Secret>> {
        match self.handle.get_item::<AuthTok<'_>>() {
            Ok(Some(tok)) => Ok(Some(Secret::new(tok.as_bytes().to_vec()))),
            Ok(None) => Ok(None),
            Err(code) => Err(PamCode::from_raw(code as c_int)),
        }
    }

    fn set_authtok(&mut self, token: &Secret) -> PamResult<()> {
        let bytes = token.expose();
        if bytes.contains(&0) {
            return Err(PamCode::BufErr);
        }
        // A NUL-terminated copy that is wiped when dropped; libpam keeps its own copy.
        let mut c = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        c.extend_from_slice(bytes);
        c.push(0);
        let handle: *mut PamHandle = &mut *self.handle;
        // SAFETY: `handle` is the live handle of this hook call; `c` is NUL-terminated, has no
        // interior NUL, and outlives the call; pam_set_item copies the string (and wipes its
        // previous copy of PAM_AUTHTOK).
        let rc = unsafe { pam_set_item(handle, PAM_AUTHTOK, c.as_ptr().cast::<c_void>()) };
        match PamCode::from_raw(rc) {
            PamCode::Success => Ok(()),
            code => Err(code),
        }
    }

    fn prompt(&mut self, text: &str) -> PamResult<Secret> {
        let conv = self.conv()?;
        match conv.send(PAM_PROMPT_ECHO_OFF, text) {
            Ok(Some(answer)) => Ok(Secret::new(answer.as_bytes().to_vec())),
            Ok(None) => Err(PamCode::ConvErr),
            Err(code) => Err(PamCode::from_raw(code as c_int)),
        }
    }

    fn message(&mut self, style: Style, text: &str) -> PamResult<()> {
        let conv = self.conv()?;
        let style = match style {
            Style::Error => PAM_ERROR_MSG,
            Style::Info => PAM_TEXT_INFO,
        };
        conv.send(style, text)
            .map(|_| ())
            .map_err(|code| PamCode::from_raw(code as c_int))
    }

    fn fail_delay(&mut self, delay: std::time::Duration) -> PamResult<()> {
        let usec = std::ffi::c_uint::try_from(delay.as_micros()).unwrap_or(std::ffi::c_uint::MAX);
        let handle: *mut PamHandle = &mut *self.handle;
        // SAFETY: `handle` is the live handle of this hook call; pam_fail_delay only records
        // the number in it.
        let rc = unsafe { pam_fail_delay(handle, usec) };
        match PamCode::from_raw(rc) {
            PamCode::Success => Ok(()),
            code => Err(code),
        }
    }

    fn pause(&mut self, duration: std::time::Duration) {
        std::thread::sleep(duration);
    }

    fn log(&mut self, level: Level, line: &str) {
        if let Some(socket) = &self.syslog_socket {
            let service = self.item(Item::Service).unwrap_or_default();
            let tag = format!("pam_sxs({}:auth):", logging::sanitize(&service));
            logging::send_datagram(socket, level, &tag, line);
            return;
        }
        let Ok(msg) = CString::new(line.replace('\0', "?")) else {
            return;
        };
        let handle: *const PamHandle = &*self.handle;
        // SAFETY: `handle` is the live handle of this hook call; the format is a literal "%s"
        // with exactly one NUL-terminated string argument, so no user text is interpreted as a
        // format. pam_syslog prefixes "MODULE(SERVICE:auth):" and logs with LOG_AUTHPRIV.
        unsafe {
            pam_syslog(
                handle,
                level.syslog_priority(),
                c"%s".as_ptr(),
                msg.as_ptr(),
            );
        }
    }
}

/// Turns libpam's hook arguments into a [`RealPam`] and runs `body`, inside [`guard`].
///
/// # Safety
/// `pamh`, `argc` and `argv` as libpam passes them to a `pam_sm_*` hook.
unsafe fn hook(
    pamh: *mut PamHandle,
    argc: c_int,
    argv: *const *const c_char,
    body: impl FnOnce(&mut RealPam<'_>, &Args) -> PamCode,
) -> c_int {
    guard(|| {
        // SAFETY: libpam passes the handle of the running transaction, valid and used by this
        // thread only for the duration of the hook; null is refused.
        let Some(handle) = (unsafe { pamh.as_mut() }) else {
            return PamCode::SystemErr;
        };
        // SAFETY: `argc`/`argv` as libpam passes them to a hook (see `collect_args`).
        let raw = unsafe { collect_args(argc, argv) };
        let args = Args::parse(&raw);
        let mut pam = RealPam {
            handle,
            syslog_socket: args.syslog_socket.clone(),
        };
        body(&mut pam, &args)
    })
}

/// # Safety
/// Called by libpam only.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments are libpam's, passed through unchanged.
    unsafe {
        hook(pamh, argc, argv, |pam, args| {
            auth::authenticate(pam, args, Flags::from_raw(flags), &SxsBackend)
        })
    }
}

/// Credentials: nothing to establish; succeed so `auth` stacks that call setcred work.
///
/// # Safety
/// Called by libpam only.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PamCode::Success)
}

/// # Safety
/// Called by libpam only.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PamCode::Ignore)
}

/// # Safety
/// Called by libpam only.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_open_session(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PamCode::Ignore)
}

/// # Safety
/// Called by libpam only.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_close_session(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PamCode::Ignore)
}

/// # Safety
/// Called by libpam only.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_chauthtok(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PamCode::Ignore)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_a_system_error() {
        let code = guard(|| panic!("boom"));
        assert_eq!(code, PamCode::SystemErr.to_raw());
        assert_eq!(guard(|| PamCode::Ignore), 25);
    }

    #[test]
    fn trivial_hooks_need_no_handle() {
        let null = std::ptr::null_mut();
        // SAFETY: these hooks never touch their arguments.
        unsafe {
            assert_eq!(pam_sm_setcred(null, 0, 0, std::ptr::null()), 0);
            assert_eq!(pam_sm_acct_mgmt(null, 0, 0, std::ptr::null()), 25);
            assert_eq!(pam_sm_open_session(null, 0, 0, std::ptr::null()), 25);
            assert_eq!(pam_sm_close_session(null, 0, 0, std::ptr::null()), 25);
            assert_eq!(pam_sm_chauthtok(null, 0, 0, std::ptr::null()), 25);
            // A null handle is refused, closed.
            assert_eq!(pam_sm_authenticate(null, 0, 0, std::ptr::null()), 4);
        }
    }

    #[test]
    fn args_from_c() {
        let a = c"debug";
        let b = c"prompt=One-time code: ";
        let argv = [a.as_ptr(), std::ptr::null(), b.as_ptr()];
        // SAFETY: three pointers, each null or a literal C string.
        let got = unsafe { collect_args(3, argv.as_ptr()) };
        assert_eq!(
            got,
            vec!["debug".to_string(), "prompt=One-time code: ".into()]
        );
        // SAFETY: argc 0 never reads argv.
        assert!(unsafe { collect_args(0, std::ptr::null()) }.is_empty());
        // SAFETY: a negative argc never reads argv.
        assert!(unsafe { collect_args(-1, std::ptr::null()) }.is_empty());
    }
}
