//! The RFC 1034 §4.3.2 answering pipeline, shared by the slow path and the compiler.
