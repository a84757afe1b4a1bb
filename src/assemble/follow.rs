//! The sha256 of a file while it is being written, computed on another
//! thread from what the file holds, so that an upload's digest is that of
//! the bytes written without a second pass over them at the end.
//!
//! A zip writer goes back to fill in each entry's local header once the
//! entry's data is written, so the bytes cannot be hashed as they pass.
//! Instead the caller [`seals`](FollowedFile::seal) an offset once nothing
//! below it will change again (for a zip: the start of the next entry, once
//! it has begun); a thread reads the file up to there and hashes it. Should a
//! write land below a sealed offset after all, the result says so and the
//! caller hashes the finished file instead.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::model::hash::{Hasher, Sha256};

/// How far writing has got, shared by the writer and its owner.
#[derive(Default)]
struct Progress {
    /// One past the highest byte written.
    end: AtomicU64,
    /// Bytes below this are final and handed to the hasher.
    sealed: AtomicU64,
    /// A write landed below `sealed`: the running digest is void.
    broken: AtomicBool,
}

/// A file being written (unbuffered: wrap it in a `BufWriter` only where
/// [`FollowedFile::end`] is not needed), with a thread hashing what is sealed.
pub struct FollowedFile {
    file: File,
    pos: u64,
    progress: Arc<Progress>,
    seals: Option<SyncSender<Seal>>,
    hasher: Option<JoinHandle<std::io::Result<(Sha256, u64)>>>,
}

/// A handle to seal offsets of a [`FollowedFile`] owned by another writer.
#[derive(Clone)]
pub struct Sealer {
    progress: Arc<Progress>,
    seals: SyncSender<Seal>,
}

/// What the hasher is told: hash up to an offset, or stop there (the
/// [`Sealer`]s may outlive the file, so the channel closing is no signal).
enum Seal {
    Upto(u64),
    Last(u64),
}

impl FollowedFile {
    /// Create (truncate) `path` for writing, and start its hasher.
    pub fn create(path: &Path) -> std::io::Result<(FollowedFile, Sealer)> {
        let file = File::create(path)?;
        let reader = File::open(path)?;
        let progress = Arc::new(Progress::default());
        // Seals are small and few; a short queue is plenty.
        let (tx, rx) = sync_channel::<Seal>(64);
        let hasher = std::thread::spawn(move || {
            let mut h = Hasher::default();
            let mut done = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            for seal in rx {
                let (upto, last) = match seal {
                    Seal::Upto(n) => (n, false),
                    Seal::Last(n) => (n, true),
                };
                while done < upto {
                    let want = ((upto - done) as usize).min(buf.len());
                    let n = reader.read_at(&mut buf[..want], done)?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    h.update(&buf[..n]);
                    done += n as u64;
                }
                if last {
                    return Ok(h.finish());
                }
            }
            Err(std::io::ErrorKind::UnexpectedEof.into())
        });
        let sealer = Sealer {
            progress: progress.clone(),
            seals: tx.clone(),
        };
        Ok((
            FollowedFile {
                file,
                pos: 0,
                progress,
                seals: Some(tx),
                hasher: Some(hasher),
            },
            sealer,
        ))
    }

    /// Seal everything written, wait for the hasher, and return the file's
    /// digest and size; None when a write went below a sealed offset or the
    /// hasher failed (hash the file instead).
    pub fn finish(mut self) -> std::io::Result<Option<(Sha256, u64)>> {
        self.file.flush()?;
        let end = self.progress.end.load(Ordering::SeqCst);
        let seals = self.seals.take().expect("finished once");
        self.progress.sealed.fetch_max(end, Ordering::SeqCst);
        // A hasher that stopped early is seen below.
        let _ = seals.send(Seal::Last(end));
        let hashed = self.hasher.take().expect("finished once").join();
        let broken = self.progress.broken.load(Ordering::SeqCst);
        Ok(match hashed {
            Ok(Ok((sha, size))) if !broken && size == end => Some((sha, size)),
            _ => None,
        })
    }
}

impl Sealer {
    /// Everything written so far (the bytes below [`Sealer::end`]).
    pub fn end(&self) -> u64 {
        self.progress.end.load(Ordering::SeqCst)
    }

    /// Nothing below `offset` will be written again: hash up to it.
    pub fn seal(&self, offset: u64) {
        seal_to(&self.progress, &self.seals, offset);
    }
}

fn seal_to(progress: &Progress, seals: &SyncSender<Seal>, offset: u64) {
    let offset = offset.min(progress.end.load(Ordering::SeqCst));
    if offset > progress.sealed.fetch_max(offset, Ordering::SeqCst) {
        // A hasher that stopped early is seen at `finish`.
        let _ = seals.send(Seal::Upto(offset));
    }
}

impl Write for FollowedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.pos < self.progress.sealed.load(Ordering::SeqCst) {
            self.progress.broken.store(true, Ordering::SeqCst);
        }
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        self.progress.end.fetch_max(self.pos, Ordering::SeqCst);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for FollowedFile {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_that_of_the_file_written() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        let (mut f, sealer) = FollowedFile::create(&path).unwrap();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
        f.write_all(b"HEAD0000").unwrap();
        f.write_all(&chunk).unwrap();
        // Fill in the header, as a zip writer does, then go on.
        f.seek(SeekFrom::Start(4)).unwrap();
        f.write_all(b"1234").unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        sealer.seal(sealer.end());
        f.write_all(b"tail").unwrap();
        let (sha, size) = f.finish().unwrap().expect("nothing sealed was changed");
        let written = std::fs::read(&path).unwrap();
        assert_eq!(size, written.len() as u64);
        assert_eq!(sha, Sha256::of(&written));
        assert_eq!(&written[..8], b"HEAD1234");
    }

    #[test]
    fn a_write_below_a_seal_voids_the_digest() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, sealer) = FollowedFile::create(&d.path().join("f")).unwrap();
        f.write_all(b"0123456789").unwrap();
        sealer.seal(sealer.end());
        f.seek(SeekFrom::Start(2)).unwrap();
        f.write_all(b"x").unwrap();
        assert!(f.finish().unwrap().is_none());
    }
}
