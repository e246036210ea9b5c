//! Test harness for rkt's integration tests.
