//! Subresource integrity, as npm records it for every tarball (`dist.integrity`, e.g.
//! `sha512-<base64>`; `dist.shasum`, a sha-1 in hex, for packages too old to have one).

use base64::Engine as _;
use sha2::Digest;

/// What a tarball must hash to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integrity {
    Sha512(Vec<u8>),
    Sha256(Vec<u8>),
    Sha1(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("integrity {0:?} is not a sha512, sha256 or sha1 digest")]
    Unsupported(String),
    #[error("expected {expected}, got {actual}")]
    Mismatch { expected: String, actual: String },
}

impl Integrity {
    /// The strongest digest of an SRI string (several may be listed, space-separated).
    pub fn parse(sri: &str) -> Result<Integrity, IntegrityError> {
        let mut best = None;
        for part in sri.split_whitespace() {
            let (algo, b64) = part.split_once('-').ok_or_else(|| IntegrityError::Unsupported(sri.into()))?;
            let b64 = b64.split('?').next().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| IntegrityError::Unsupported(sri.into()))?;
            let candidate = match algo {
                "sha512" => Integrity::Sha512(bytes),
                "sha256" => Integrity::Sha256(bytes),
                "sha1" => Integrity::Sha1(bytes),
                _ => continue,
            };
            if best.as_ref().is_none_or(|b: &Integrity| b.rank() < candidate.rank()) {
                best = Some(candidate);
            }
        }
        best.ok_or_else(|| IntegrityError::Unsupported(sri.into()))
    }

    /// From npm's hex `shasum` (sha-1).
    pub fn from_shasum(hex_digest: &str) -> Result<Integrity, IntegrityError> {
        hex::decode(hex_digest).map(Integrity::Sha1).map_err(|_| IntegrityError::Unsupported(hex_digest.into()))
    }

    /// The sha-512 SRI of `bytes` (how Troupe names what it stores).
    pub fn sha512_of(bytes: &[u8]) -> Integrity {
        Integrity::Sha512(sha2::Sha512::digest(bytes).to_vec())
    }

    fn rank(&self) -> u8 {
        match self {
            Integrity::Sha1(_) => 1,
            Integrity::Sha256(_) => 2,
            Integrity::Sha512(_) => 3,
        }
    }

    fn digest_of(&self, bytes: &[u8]) -> Integrity {
        match self {
            Integrity::Sha512(_) => Integrity::Sha512(sha2::Sha512::digest(bytes).to_vec()),
            Integrity::Sha256(_) => Integrity::Sha256(sha2::Sha256::digest(bytes).to_vec()),
            Integrity::Sha1(_) => Integrity::Sha1(sha1::Sha1::digest(bytes).to_vec()),
        }
    }

    /// Checks that `bytes` hash to this digest.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), IntegrityError> {
        let actual = self.digest_of(bytes);
        if &actual == self {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch { expected: self.to_string(), actual: actual.to_string() })
        }
    }

    /// A name fit for a file: the algorithm and the digest in hex.
    pub fn file_name(&self) -> String {
        let (algo, bytes) = self.parts();
        format!("{algo}-{}", hex::encode(bytes))
    }

    fn parts(&self) -> (&'static str, &[u8]) {
        match self {
            Integrity::Sha512(b) => ("sha512", b),
            Integrity::Sha256(b) => ("sha256", b),
            Integrity::Sha1(b) => ("sha1", b),
        }
    }
}

impl std::fmt::Display for Integrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (algo, bytes) = self.parts();
        write!(f, "{algo}-{}", base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tarball_is_checked_against_the_strongest_digest() {
        let bytes = b"package bytes";
        let good = Integrity::sha512_of(bytes);
        let sri = format!("sha1-{} {good}", base64::engine::general_purpose::STANDARD.encode([0u8; 20]));
        let parsed = Integrity::parse(&sri).unwrap();
        assert_eq!(parsed, good);
        parsed.verify(bytes).unwrap();
        let err = parsed.verify(b"other bytes").unwrap_err().to_string();
        assert!(err.starts_with(&format!("expected {good}, got sha512-")), "{err}");
    }

    #[test]
    fn an_old_shasum_still_verifies() {
        let i = Integrity::from_shasum("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed").unwrap();
        i.verify(b"hello world").unwrap();
        assert!(Integrity::parse("md5-AAAA").is_err());
    }
}
