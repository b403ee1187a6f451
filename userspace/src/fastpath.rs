//! The XDP fast path: load, attach per NIC, fill and swap map generations, read counters.
