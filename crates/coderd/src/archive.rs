//! Conversions between the two archive formats clients upload: tar (stored) and zip.

use std::io::{Cursor, Read, Write};

/// Most bytes an archive may expand to when converted (guards against zip bombs).
const MAX_EXPANDED: u64 = 1 << 30;

/// Rewrites a zip archive as a ustar archive with the same files and directories.
pub fn zip_to_tar(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| e.to_string())?;
    let mut out = tar::Builder::new(Vec::new());
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
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
        total += entry.size();
        if total > MAX_EXPANDED {
            return Err("zip archive expands to more than 1 GiB".into());
        }
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(buf.len() as u64);
        out.append_data(&mut header, &path, buf.as_slice())
            .map_err(|e| e.to_string())?;
    }
    out.into_inner().map_err(|e| e.to_string())
}

/// Rewrites a tar archive as a zip archive (deflated), regular files and directories only.
pub fn tar_to_zip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = tar::Archive::new(Cursor::new(data));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut total = 0u64;
    for entry in archive.entries().map_err(|e| e.to_string())? {
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
                    return Err("tar archive expands to more than 1 GiB".into());
                }
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(|e| e.to_string())?;
                zip.start_file(path, opts).map_err(|e| e.to_string())?;
                zip.write_all(&buf).map_err(|e| e.to_string())?;
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
}
