//! What the main program and the cookie stage signal each other: the stage's verdict bits, and
//! the slip marker the main program leaves for the stage.

/// Verdict bits the stage leaves for the main program.
/// Set whenever the stage ran for the frame at hand (so the main program doesn't jump again).
pub const DONE: u64 = 1;
/// The server cookie verified: no rate limit applies.
pub const VALID: u64 = 2;
/// The client sent a well-formed cookie: the answer carries the COOKIE option the stage made.
pub const ANSWER: u64 = 4;

/// `opt_back` of a slip (header and question, TC=1): to a client that sent a cookie the stage
/// sends it as BADCOOKIE (RFC 7873 §5.4, as BIND and Knot slip): TC cleared, RCODE 23 (7 in the
/// header, 1 in the extended RCODE of the OPT it appends with the fresh cookie). The client's
/// retry over UDP then shows a valid cookie, which no limit applies to. The main program makes
/// room for the cookie option as for any answer; the stage grows the frame by the OPT itself
/// (keeping that arithmetic out of the main program, whose verifier budget is nearly spent).
pub const NEW_OPT: u8 = 0xff;
