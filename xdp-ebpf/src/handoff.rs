//! The cookie check's verdict bits, and the slip marker the main program leaves for the cookie
//! stage.

/// Verdict bits of the cookie check ([`crate::cookie::check_here`]).
/// Set whenever a cookie was checked for the frame at hand.
pub const DONE: u64 = 1;
/// The server cookie verified: no rate limit applies.
pub const VALID: u64 = 2;
/// The client sent a well-formed cookie: the answer carries the COOKIE option the check made.
pub const ANSWER: u64 = 4;

/// `opt_back` of a slip (header and question, TC=1): to a client that sent a cookie the stage
/// sends it as BADCOOKIE (RFC 7873 §5.4, as BIND and Knot slip): TC cleared, RCODE 23 (7 in the
/// header, 1 in the extended RCODE of the OPT it appends with the fresh cookie). The client's
/// retry over UDP then shows a valid cookie, which no limit applies to. The main program makes
/// room for the cookie option as for any answer; the stage grows the frame by the OPT itself
/// (keeping that arithmetic out of the main program, whose verifier budget is nearly spent).
pub const NEW_OPT: u8 = 0xff;
