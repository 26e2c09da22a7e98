//! SxS exception codes this project knows by number.
//!
//! The vendor documents that failures carry `exceptionCode`/`exceptionMessage` but not the
//! list of codes. `2010` (wrong OTP) is from the vendor's sample; the others are the ones the
//! simulator uses (docs/simulator.md). Where a decision depends on a code (is the user
//! unenrolled?), the codes are configurable (`policy.unenrolled_codes`).

/// Wrong OTP.
pub const WRONG_OTP: &str = "2010";
/// The OTP was already used (replay).
pub const OTP_REPLAYED: &str = "2011";
/// Too many consecutive failures: the token is locked.
pub const TOKEN_LOCKED: &str = "2012";
/// The token is enrolled but not yet activated on the phone.
pub const TOKEN_NOT_ACTIVE: &str = "2013";
/// No such user.
pub const UNKNOWN_USER: &str = "2001";
/// No such token serial.
pub const UNKNOWN_TOKEN: &str = "2002";
/// The user exists but has no token.
pub const NO_TOKEN: &str = "2003";
/// The token serial does not belong to the user id sent with it.
pub const TOKEN_USER_MISMATCH: &str = "2004";
/// The user has no mobile number to send an SMS to (simulator's code).
pub const NO_MOBILE: &str = "2005";
/// The SMS code expired before it was used (simulator's code).
pub const OTP_EXPIRED: &str = "2014";
/// The request is not one SxS understands (missing or malformed field).
pub const BAD_REQUEST: &str = "1001";
/// A wrong activation code; after three the code is dead.
pub const WRONG_ACTIVATION_CODE: &str = "3001";
/// The activation code is dead (three wrong tries) or was never generated.
pub const ACTIVATION_CODE_DEAD: &str = "3002";

/// Codes that mean "this user has no token at SxS": the default of `policy.unenrolled_codes`.
pub const UNENROLLED: &[&str] = &[UNKNOWN_USER, NO_TOKEN];

/// A code the client itself uses for an OTP refused before any call (not digits, wrong length).
pub const LOCAL_MALFORMED_OTP: &str = "local:malformed-otp";

/// A MAC input refused before any call (empty, too long, not printable).
pub const LOCAL_MALFORMED_MAC_INPUT: &str = "local:malformed-mac-input";

/// The user asked for more SMS codes than `sms.max_per_user` per `sms.window`.
pub const LOCAL_SMS_RATE_LIMITED: &str = "local:sms-rate-limited";
