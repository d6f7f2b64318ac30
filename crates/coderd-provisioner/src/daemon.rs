//! The provisioner daemon loop.
