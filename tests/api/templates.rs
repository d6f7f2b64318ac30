//! Template API tests.
