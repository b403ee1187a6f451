//! The parsed question and the answer found for it, passed from parser to lookup to rewrite.
use rampart_common::{
    AnswerHead, Counter,
    dns::{FLAG_AA, FLAG_QR, FLAG_RCODE, FLAG_TC, RCODE_NXDOMAIN},
};

use crate::handoff::NEW_OPT;

pub struct Question {
    /// Bytes of the question: name + type + class.
    pub len: usize,
    /// Bytes of the name in wire form, including the root label.
    pub name_len: usize,
    pub qtype: u16,
    /// Checksum contribution of the question bytes at their place in the payload.
    pub csum: u64,
    /// Packet offset of the first byte after the question.
    pub end: usize,
}

/// A found answer and where its tail lives.
pub struct Answer {
    pub value: AnswerHead,
    /// The inline tail inside its record (valid while the program runs: RCU).
    pub inline: *const u8,
    /// Set DO in the OPT record's flags after copying the tail (the DO variant derived from
    /// the EDNS answer).
    pub set_do: bool,
}

impl Answer {
    #[inline(always)]
    pub fn new(value: AnswerHead, inline: *const u8, set_do: bool) -> Answer {
        Answer {
            value,
            inline,
            set_do,
        }
    }

    /// The minimal answer a rate limit "slips" instead, as Knot and NSD send it: this answer's
    /// header with TC set, the question, no records (and so no OPT); a real resolver retries
    /// over TCP, a spoofed victim gets no more bytes than the query had. To a client that sent
    /// a DNS cookie the cookie stage sends it as BADCOOKIE instead ([`NEW_OPT`]).
    #[inline(always)]
    pub fn slip(&self) -> Answer {
        Answer::truncated(self.value.flags & (FLAG_AA | FLAG_RCODE), NEW_OPT)
    }

    /// The slip for a query over the slow path's budget: TC=1, no records, no AA (the slow
    /// path hasn't decided whether the name is ours); a resolver retries over TCP, which the
    /// budget doesn't cover, so it stays TC=1 whatever cookie the query had.
    #[inline(always)]
    pub fn budget_slip() -> Answer {
        Answer::truncated(0, 0)
    }

    #[inline(always)]
    fn truncated(flags: u16, opt_back: u8) -> Answer {
        Answer {
            value: AnswerHead {
                flags: flags | FLAG_QR | FLAG_TC,
                opt_back,
                ..AnswerHead::default()
            },
            inline: core::ptr::null(),
            set_do: false,
        }
    }

    /// Which tx counter this answer bumps, read off its header.
    #[inline(always)]
    pub fn kind(&self) -> Counter {
        let v = &self.value;
        if v.flags & FLAG_RCODE == RCODE_NXDOMAIN {
            Counter::TxNxdomain
        } else if v.ancount != 0 {
            Counter::TxAnswer
        } else if v.flags & FLAG_AA != 0 {
            Counter::TxNodata
        } else {
            Counter::TxReferral
        }
    }
}
