//! The `echo` provisioner (see docs/echo-provisioner.md).
