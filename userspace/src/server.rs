//! The slow path: UDP (SO_REUSEPORT workers) and TCP authoritative server.
