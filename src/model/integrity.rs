//! Subresource Integrity values (`sha512-BASE64`), as the npm registry pins
//! its tarballs: parsed strictly, and checked against bytes.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The hash function of an integrity value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-512, what the registry gives for every tarball published since 2017.
    Sha512,
    /// SHA-1 (`shasum`), only for tarballs that have nothing better.
    Sha1,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha512 => "sha512",
            Algorithm::Sha1 => "sha1",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha512 => 64,
            Algorithm::Sha1 => 20,
        }
    }
}

/// One integrity value: the algorithm and the digest's bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Integrity {
    algorithm: Algorithm,
    digest: Vec<u8>,
}

/// A value offered as an integrity that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not an integrity value (sha512-BASE64, or a 40-digit sha1 shasum)")]
pub struct BadIntegrity {
    /// The offending value, shortened and with control characters escaped.
    pub shown: String,
}

impl BadIntegrity {
    fn new(value: &str) -> BadIntegrity {
        BadIntegrity {
            shown: value
                .chars()
                .take(100)
                .flat_map(char::escape_default)
                .collect(),
        }
    }
}

impl Integrity {
    /// An SRI string: space-separated `algo-BASE64` entries; the strongest
    /// known one is kept (sha512 over sha1), unknown algorithms are passed
    /// over, and a digest of the wrong length is refused.
    pub fn parse(value: &str) -> Result<Integrity, BadIntegrity> {
        let mut best: Option<Integrity> = None;
        for part in value.split_whitespace() {
            let Some((algo, rest)) = part.split_once('-') else {
                return Err(BadIntegrity::new(value));
            };
            let algorithm = match algo {
                "sha512" => Algorithm::Sha512,
                "sha1" => Algorithm::Sha1,
                _ => continue,
            };
            // Options (`?opt`) may follow the digest.
            let b64 = rest.split('?').next().unwrap_or(rest);
            let digest = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| BadIntegrity::new(value))?;
            if digest.len() != algorithm.digest_len() {
                return Err(BadIntegrity::new(value));
            }
            let this = Integrity { algorithm, digest };
            if best.as_ref().is_none_or(|b| b.algorithm > this.algorithm) {
                best = Some(this);
            }
        }
        best.ok_or_else(|| BadIntegrity::new(value))
    }

    /// A registry's `shasum`: 40 hex digits of sha1.
    pub fn from_shasum(hex: &str) -> Result<Integrity, BadIntegrity> {
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadIntegrity::new(hex));
        }
        let digest = (0..20)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits"))
            .collect();
        Ok(Integrity {
            algorithm: Algorithm::Sha1,
            digest,
        })
    }

    /// The value for `data`, with SHA-512.
    pub fn sha512_of(data: &[u8]) -> Integrity {
        Integrity {
            algorithm: Algorithm::Sha512,
            digest: sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The value of everything `reader` yields, with `algorithm` (read in
    /// bounded chunks).
    pub fn of_reader(
        algorithm: Algorithm,
        mut reader: impl std::io::Read,
    ) -> std::io::Result<Integrity> {
        let mut h = match algorithm {
            Algorithm::Sha512 => IntegrityHasher::Sha512(sha2::Sha512::new()),
            Algorithm::Sha1 => IntegrityHasher::Sha1(sha1::Sha1::new()),
        };
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finish(algorithm))
    }

    /// Whether `reader`'s bytes have this digest.
    pub fn matches_reader(&self, reader: impl std::io::Read) -> std::io::Result<bool> {
        Ok(Integrity::of_reader(self.algorithm, reader)? == *self)
    }

    /// The digest as lowercase hex (names cache entries).
    pub fn hex(&self) -> String {
        super::hash::hex(&self.digest)
    }
}

/// A running hash of one of the algorithms.
pub enum IntegrityHasher {
    /// SHA-512.
    Sha512(sha2::Sha512),
    /// SHA-1.
    Sha1(sha1::Sha1),
}

impl IntegrityHasher {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            IntegrityHasher::Sha512(h) => h.update(data),
            IntegrityHasher::Sha1(h) => h.update(data),
        }
    }

    /// The integrity value of what was fed.
    pub fn finish(self, algorithm: Algorithm) -> Integrity {
        let digest = match self {
            IntegrityHasher::Sha512(h) => h.finalize().to_vec(),
            IntegrityHasher::Sha1(h) => h.finalize().to_vec(),
        };
        Integrity { algorithm, digest }
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.algorithm.name(),
            base64::engine::general_purpose::STANDARD.encode(&self.digest)
        )
    }
}

impl fmt::Debug for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TryFrom<String> for Integrity {
    type Error = BadIntegrity;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Integrity::parse(&value)
    }
}

impl From<Integrity> for String {
    fn from(value: Integrity) -> String {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sri_values_are_parsed_strictly_and_checked() {
        let data = b"hello";
        let good = Integrity::sha512_of(data);
        let text = good.to_string();
        assert!(text.starts_with("sha512-"));
        assert_eq!(Integrity::parse(&text).unwrap(), good);
        assert!(good.matches_reader(&data[..]).unwrap());
        assert!(!good.matches_reader(&b"hellO"[..]).unwrap());
        // sha512 wins over sha1 in one value; unknown algorithms pass.
        let sha1 = Integrity::from_shasum("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d").unwrap();
        assert!(sha1.matches_reader(&data[..]).unwrap());
        let both = format!("{sha1} {text} sha384-abc");
        assert_eq!(Integrity::parse(&both).unwrap(), good);
        for bad in [
            "",
            "sha512",
            "sha512-!!!",
            "sha512-aGVsbG8=",
            "md5-aGVsbG8=",
            "../x",
        ] {
            assert!(Integrity::parse(bad).is_err(), "{bad}");
        }
        assert!(Integrity::from_shasum("xyz").is_err());
    }
}
