//! SHA-256 digests as a type that can only hold 64 lowercase hex digits.
//!
//! A digest names files in the cache, so a value taken from an index page,
//! a PEP 658 hash, a lock file, a recipe or a checksum file must never be
//! able to carry a path: it enters the program only through
//! [`Sha256::parse`], which accepts 64 hex digits and nothing else.

use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// A SHA-256 digest: exactly 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256(String);

/// A value offered as a sha256 that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a sha256 (64 hex digits)")]
pub struct BadHash {
    /// The offending value, shortened and with control characters escaped.
    pub shown: String,
}

impl BadHash {
    fn new(value: &str) -> BadHash {
        let mut shown: String = value
            .chars()
            .take(80)
            .flat_map(char::escape_default)
            .collect();
        if value.chars().count() > 80 {
            shown.push('…');
        }
        BadHash { shown }
    }
}

impl Sha256 {
    /// Accept exactly 64 hex digits (either case); anything else is refused.
    pub fn parse(value: &str) -> Result<Sha256, BadHash> {
        if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Sha256(value.to_ascii_lowercase()))
        } else {
            Err(BadHash::new(value))
        }
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Sha256 {
        Sha256(hex(&sha2::Sha256::digest(data)))
    }

    /// The digest of everything `reader` yields, read in bounded chunks.
    pub fn of_reader(reader: impl Read) -> std::io::Result<(Sha256, u64)> {
        Sha256::copy(reader, std::io::sink())
    }

    /// Copy `reader` into `writer`, hashing the bytes as they pass: the
    /// digest is that of what was written.
    pub fn copy(
        mut reader: impl Read,
        mut writer: impl std::io::Write,
    ) -> std::io::Result<(Sha256, u64)> {
        let mut h = Hasher::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            writer.write_all(&buf[..n])?;
        }
        writer.flush()?;
        Ok(h.finish())
    }

    /// The digest of a file's bytes, and its size.
    pub fn of_file(path: &std::path::Path) -> std::io::Result<(Sha256, u64)> {
        Sha256::of_reader(std::fs::File::open(path)?)
    }

    /// The 64 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sha256 {
    type Error = BadHash;
    fn try_from(value: String) -> Result<Sha256, BadHash> {
        Sha256::parse(&value)
    }
}

impl From<Sha256> for String {
    fn from(h: Sha256) -> String {
        h.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.0)
    }
}

impl PartialEq<str> for Sha256 {
    fn eq(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

/// A streaming SHA-256 that also counts bytes.
#[derive(Default, Clone)]
pub struct Hasher {
    inner: sha2::Sha256,
    len: u64,
}

impl Hasher {
    /// Hash `data` too.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }

    /// The digest and the number of bytes hashed.
    pub fn finish(self) -> (Sha256, u64) {
        (Sha256(hex(&self.inner.finalize())), self.len)
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_hex_digits_are_accepted() {
        let h = "Ab".repeat(32);
        assert_eq!(Sha256::parse(&h).unwrap().as_str(), "ab".repeat(32));
        for bad in [
            "",
            "abc",
            &"a".repeat(63),
            &"a".repeat(65),
            &format!("../../{}", "a".repeat(58)),
            &format!("{}/x", "a".repeat(62)),
            &"g".repeat(64),
            "../../../../etc/passwd",
        ] {
            assert!(Sha256::parse(bad).is_err(), "{bad}");
        }
        let e = Sha256::parse("a\nb").unwrap_err();
        assert_eq!(e.to_string(), "`a\\nb` is not a sha256 (64 hex digits)");
    }

    #[test]
    fn serde_validates() {
        let ok: Sha256 = serde_json::from_str(&format!("\"{}\"", "0".repeat(64))).unwrap();
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            format!("\"{}\"", "0".repeat(64))
        );
        let bad = serde_json::from_str::<Sha256>("\"../../x\"").unwrap_err();
        assert!(bad.to_string().contains("not a sha256"), "{bad}");
    }

    #[test]
    fn digests() {
        assert_eq!(
            Sha256::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (h, n) = Sha256::of_reader(&b"abc"[..]).unwrap();
        assert_eq!((h, n), (Sha256::of(b"abc"), 3));
    }
}
