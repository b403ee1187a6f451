//! DNS messages on the wire: query parsing and response rendering (hickory-proto).
