//! The archives clients upload: tar (stored) and zip (converted to tar), checked so that no
//! archive expands past what the server is willing to hold.

use std::io::{Cursor, Read};

/// Most bytes an archive's files may add up to once expanded: 100 MiB, upstream's upload cap.
pub const MAX_EXPANDED: u64 = 100 << 20;
/// Most entries (files, directories, links) an archive may hold.
pub const MAX_ENTRIES: usize = 10_000;

fn too_large() -> String {
    format!("archive expands to more than {} MiB", MAX_EXPANDED >> 20)
}

fn too_many() -> String {
    format!("archive has more than {MAX_ENTRIES} entries")
}

/// A reader that counts what passes through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Rewrites a zip archive as a ustar archive with the same files and directories.
///
/// The declared sizes in the zip's central directory are checked against [`MAX_EXPANDED`]
/// before anything is decompressed, so a bomb is refused at once; each entry is then read
/// for no more than its declared size (an entry that inflates to more is cut there and one
/// that inflates to less is refused), so memory stays bounded whatever the headers claim.
pub fn zip_to_tar(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| e.to_string())?;
    if zip.len() > MAX_ENTRIES {
        return Err(too_many());
    }
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| e.to_string())?;
        declared = declared.saturating_add(entry.size());
        if declared > MAX_EXPANDED {
            return Err(too_large());
        }
    }
    // Headers and padding take at most two blocks per entry, plus the end marker.
    let capacity = declared as usize + (zip.len() + 2) * 1024;
    let mut out = tar::Builder::new(Vec::with_capacity(capacity));
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let Some(path) = entry.enclosed_name() else {
            return Err(format!("unsafe path {:?} in zip archive", entry.name()));
        };
        let mut header = tar::Header::new_ustar();
        header.set_mode(
            entry
                .unix_mode()
                .unwrap_or(if entry.is_dir() { 0o755 } else { 0o644 })
                & 0o7777,
        );
        header.set_mtime(0);
        if entry.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            out.append_data(&mut header, &path, std::io::empty())
                .map_err(|e| e.to_string())?;
            continue;
        }
        let size = entry.size();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        let mut body = Counted {
            inner: entry.take(size),
            n: 0,
        };
        out.append_data(&mut header, &path, &mut body)
            .map_err(|e| e.to_string())?;
        if body.n != size {
            return Err(format!(
                "zip entry {:?} is shorter than its declared size",
                path.display()
            ));
        }
    }
    out.into_inner().map_err(|e| e.to_string())
}

/// Checks a tar archive without unpacking it: at most [`MAX_ENTRIES`] entries, no sparse
/// files (a few bytes that unpack to any size), and files adding up to at most
/// [`MAX_EXPANDED`].
pub fn check_tar(data: &[u8]) -> Result<(), String> {
    let mut archive = tar::Archive::new(Cursor::new(data));
    let mut total = 0u64;
    for (i, entry) in archive.entries().map_err(|e| e.to_string())?.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(too_many());
        }
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.header().entry_type() == tar::EntryType::GNUSparse {
            return Err("sparse files are not supported in tar archives".into());
        }
        total = total.saturating_add(entry.size());
        if total > MAX_EXPANDED {
            return Err(too_large());
        }
    }
    Ok(())
}

/// Rewrites a tar archive as a zip archive (deflated), regular files and directories only.
/// Stored archives passed [`check_tar`], so this is bounded too; the checks repeat here for
/// archives stored before they existed.
pub fn tar_to_zip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = tar::Archive::new(Cursor::new(data));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut total = 0u64;
    for (i, entry) in archive.entries().map_err(|e| e.to_string())?.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(too_many());
        }
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let mode = entry.header().mode().unwrap_or(0o644);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                zip.add_directory(path, opts).map_err(|e| e.to_string())?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                total += entry.size();
                if total > MAX_EXPANDED {
                    return Err(too_large());
                }
                zip.start_file(path, opts).map_err(|e| e.to_string())?;
                std::io::copy(&mut entry, &mut zip).map_err(|e| e.to_string())?;
            }
            _ => {}
        }
    }
    Ok(zip.finish().map_err(|e| e.to_string())?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "dir/hello.txt", &b"hello"[..])
            .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn tar_zip_round_trip() {
        let zip = tar_to_zip(&sample_tar()).unwrap();
        let tar = zip_to_tar(&zip).unwrap();
        let mut a = tar::Archive::new(Cursor::new(tar));
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("dir/hello.txt"));
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(zip_to_tar(b"not a zip").is_err());
    }

    #[test]
    fn tar_checks() {
        assert!(check_tar(&sample_tar()).is_ok());
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..=MAX_ENTRIES {
            let mut h = tar::Header::new_ustar();
            h.set_size(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("f{i}"), std::io::empty())
                .unwrap();
        }
        assert_eq!(check_tar(&b.into_inner().unwrap()), Err(too_many()));
    }
}
