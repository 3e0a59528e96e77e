//! Reading the user's files (scenarios, migrations): regular files only, and
//! no more than a bound, so a scenario path of `/dev/zero` or a FIFO is an
//! error, not a process that eats the machine's memory or waits forever.

use std::io::Read;
use std::path::Path;

/// A scenario file larger than this is surely not one.
pub const SCENARIO_LIMIT: u64 = 16 << 20;
/// A migration file may carry data (long INSERT lists), but not this much.
pub const MIGRATION_LIMIT: u64 = 256 << 20;

/// The bytes of `path`, a regular file of at most `limit` bytes; the error
/// says why not, for a message after the path.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    if !meta.is_file() {
        return Err("not a regular file (a device, FIFO or socket)".into());
    }
    let too_big = || format!("larger than {} MiB; is it the right file?", limit >> 20);
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_the_bound_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.sql");
        std::fs::write(&f, "SELECT 1;\n").unwrap();
        assert_eq!(read_bounded(&f, 100).unwrap(), b"SELECT 1;\n");
        assert!(read_bounded(&f, 5).unwrap_err().contains("larger than"));
        assert!(read_bounded(dir.path(), 100)
            .unwrap_err()
            .contains("directory"));
        assert!(read_bounded(Path::new("/dev/zero"), 100)
            .unwrap_err()
            .contains("not a regular file"));
        assert!(read_bounded(&dir.path().join("none"), 100).is_err());
    }
}
