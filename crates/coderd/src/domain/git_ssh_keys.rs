//! Users' Git SSH keys.

use crate::http::error::{ApiError, ApiResult};

/// A fresh ed25519 key pair: (private key in OpenSSH PEM, public key in `authorized_keys`
/// format with a trailing newline).
pub fn generate() -> ApiResult<(String, String)> {
    let key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(|e| ApiError::internal("Generating a Git SSH key", e))?;
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| ApiError::internal("Encoding a Git SSH key", e))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| ApiError::internal("Encoding a Git SSH key", e))?;
    Ok((private.to_string(), format!("{public}\n")))
}
