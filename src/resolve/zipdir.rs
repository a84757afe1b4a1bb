//! Just enough of the zip format to read one member (a wheel's METADATA)
//! out of byte ranges, without downloading the whole archive. The `zip`
//! crate needs a complete seekable file, which a range read does not give.

use std::io::Read;

/// Where the central directory lies in the whole file.
#[derive(Debug, Clone, Copy)]
pub struct CentralDir {
    pub offset: u64,
    pub size: u64,
}

/// A central-directory entry for the member we want.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name_len: u16,
    pub method: u16,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub header_offset: u64,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// `*.dist-info/METADATA` at the top level of the archive.
pub fn is_metadata_path(name: &str) -> bool {
    match name.split_once('/') {
        Some((dir, rest)) => dir.ends_with(".dist-info") && rest == "METADATA",
        None => false,
    }
}

/// Find the central directory from the file's last bytes.
/// `tail_start` is the offset of `tail[0]` in the whole file.
pub fn find_central_directory(tail: &[u8], tail_start: u64) -> Option<CentralDir> {
    if tail.len() < 22 {
        return None;
    }
    let eocd = (0..=tail.len() - 22)
        .rev()
        .find(|&i| u32_at(tail, i) == Some(0x0605_4b50))?;
    let size = u32_at(tail, eocd + 12)? as u64;
    let offset = u32_at(tail, eocd + 16)? as u64;
    if offset != 0xFFFF_FFFF && size != 0xFFFF_FFFF {
        return Some(CentralDir { offset, size });
    }
    // Zip64: locator sits right before the EOCD.
    let loc = eocd.checked_sub(20)?;
    if u32_at(tail, loc)? != 0x0706_4b50 {
        return None;
    }
    let rec_abs = u64_at(tail, loc + 8)?;
    let rec = usize::try_from(rec_abs.checked_sub(tail_start)?).ok()?;
    if u32_at(tail, rec)? != 0x0606_4b50 {
        return None;
    }
    Some(CentralDir {
        size: u64_at(tail, rec + 40)?,
        offset: u64_at(tail, rec + 48)?,
    })
}

/// The bytes `[offset, offset + size)` of the whole file, when `tail`
/// (which starts at `tail_start`) holds all of them. Offsets come from the
/// remote file: every step is checked.
pub fn slice_in(tail: &[u8], tail_start: u64, offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset.checked_sub(tail_start)?).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    tail.get(start..end)
}

/// Find the METADATA entry in a central directory.
pub fn find_metadata_entry(cd: &[u8]) -> Option<Entry> {
    let mut i = 0;
    while u32_at(cd, i) == Some(0x0201_4b50) {
        let method = u16_at(cd, i + 10)?;
        let mut csize = u32_at(cd, i + 20)? as u64;
        let mut usize_ = u32_at(cd, i + 24)? as u64;
        let name_len = u16_at(cd, i + 28)?;
        let extra_len = u16_at(cd, i + 30)? as usize;
        let comment_len = u16_at(cd, i + 32)? as usize;
        let mut offset = u32_at(cd, i + 42)? as u64;
        let name_start = i + 46;
        let name = cd.get(name_start..name_start.checked_add(name_len as usize)?)?;
        if is_metadata_path(&String::from_utf8_lossy(name)) {
            // Zip64 extra field carries the real values of saturated fields.
            let extra = cd.get(name_start + name_len as usize..)?.get(..extra_len)?;
            let mut j = 0;
            while j + 4 <= extra.len() {
                let id = u16_at(extra, j)?;
                let len = u16_at(extra, j + 2)? as usize;
                if id == 0x0001 {
                    let mut k = j + 4;
                    if usize_ == 0xFFFF_FFFF {
                        usize_ = u64_at(extra, k)?;
                        k += 8;
                    }
                    if csize == 0xFFFF_FFFF {
                        csize = u64_at(extra, k)?;
                        k += 8;
                    }
                    if offset == 0xFFFF_FFFF {
                        offset = u64_at(extra, k)?;
                    }
                }
                j += 4 + len;
            }
            return Some(Entry {
                name_len,
                method,
                compressed_size: csize,
                uncompressed_size: usize_,
                header_offset: offset,
            });
        }
        i = name_start + name_len as usize + extra_len + comment_len;
    }
    None
}

/// Decode the member from bytes that start at its local header.
pub fn read_local_entry(local: &[u8], entry: &Entry) -> Option<Vec<u8>> {
    if u32_at(local, 0)? != 0x0403_4b50 {
        return None;
    }
    let n = u16_at(local, 26)? as usize;
    let e = u16_at(local, 28)? as usize;
    let start = 30 + n + e;
    let end = start.checked_add(usize::try_from(entry.compressed_size).ok()?)?;
    let data = local.get(start..end)?;
    let limit = entry.uncompressed_size.min(64 * 1024 * 1024);
    match entry.method {
        0 => Some(data.to_vec()),
        8 => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out)
                .ok()?;
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel(method: zip::CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file("pkg/__init__.py", o).unwrap();
        w.write_all(&vec![b'#'; 100_000]).unwrap();
        w.start_file("pkg-1.0.dist-info/METADATA", o).unwrap();
        w.write_all(b"Name: pkg\nVersion: 1.0\n").unwrap();
        w.start_file("pkg-1.0.dist-info/RECORD", o).unwrap();
        w.write_all(b"").unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn reads_metadata_from_ranges() {
        for method in [
            zip::CompressionMethod::Stored,
            zip::CompressionMethod::Deflated,
        ] {
            let whole = wheel(method);
            let tail_start = whole.len().saturating_sub(300);
            let dir = find_central_directory(&whole[tail_start..], tail_start as u64).unwrap();
            let cd = slice_in(&whole, 0, dir.offset, dir.size).unwrap();
            let entry = find_metadata_entry(cd).unwrap();
            let local = &whole[entry.header_offset as usize..];
            let data = read_local_entry(local, &entry).unwrap();
            assert_eq!(data, b"Name: pkg\nVersion: 1.0\n");
        }
    }

    #[test]
    fn offsets_past_the_data_are_refused() {
        let tail = [0u8; 100];
        assert!(slice_in(&tail, 1000, 1050, 10).is_some());
        assert!(slice_in(&tail, 1000, 1095, 10).is_none());
        assert!(slice_in(&tail, 1000, 900, 10).is_none());
        assert!(slice_in(&tail, 1000, u64::MAX, u64::MAX).is_none());
        assert!(slice_in(&tail, 0, 5, u64::MAX - 2).is_none());
        let entry = Entry {
            name_len: 0,
            method: 0,
            compressed_size: u64::MAX,
            uncompressed_size: 10,
            header_offset: 0,
        };
        let mut local = vec![0x50, 0x4b, 0x03, 0x04];
        local.resize(40, 0);
        assert!(read_local_entry(&local, &entry).is_none());
    }

    #[test]
    fn metadata_path_is_top_level_only() {
        assert!(is_metadata_path("a-1.dist-info/METADATA"));
        assert!(!is_metadata_path("a/b-1.dist-info/METADATA"));
        assert!(!is_metadata_path("a-1.dist-info/METADATA.bak"));
        assert!(!is_metadata_path("a-1.data/METADATA"));
    }
}
