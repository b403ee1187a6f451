//! DNS wire constants both sides read and write: header layout, flag bits, OPT and option codes.

/// The fixed DNS header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;

// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD/CD).
pub const FLAG_QR: u16 = 0x8000;
/// The 4-bit OPCODE field.
pub const FLAG_OPCODE: u16 = 0x7800;
pub const OPCODE_SHIFT: u16 = 11;
pub const FLAG_AA: u16 = 0x0400;
pub const FLAG_TC: u16 = 0x0200;
pub const FLAG_RD: u16 = 0x0100;
/// Checking Disabled: answers clear it (RFC 4035 §3.1.6; NSD and Knot do).
pub const FLAG_CD: u16 = 0x0010;
/// AD: authentic data (RFC 4035 §3.2.3).
pub const FLAG_AD: u16 = 0x0020;
/// The header's 4-bit RCODE field.
pub const FLAG_RCODE: u16 = 0x000f;

pub const RCODE_NXDOMAIN: u16 = 3;
/// BADCOOKIE (RFC 7873 §8): an extended RCODE, its low four bits in the header.
pub const RCODE_BADCOOKIE: u16 = 23;

/// CLASS IN (RFC 1035 §3.2.4).
pub const CLASS_IN: u16 = 1;
/// The OPT pseudo-record (RFC 6891 §6.1.1).
pub const TYPE_OPT: u16 = 41;
/// DO in the OPT record's flags (RFC 3225).
pub const EDNS_DO: u16 = 0x8000;

/// EDNS option codes (IANA "DNS EDNS0 Option Codes").
pub const OPTION_NSID: u16 = 3;
/// DNS cookies (RFC 7873 §4).
pub const OPTION_COOKIE: u16 = 10;
/// Extended DNS Errors (RFC 8914).
pub const OPTION_EDE: u16 = 15;
