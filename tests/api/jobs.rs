//! Provisioner job queue tests.
