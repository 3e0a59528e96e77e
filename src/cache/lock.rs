//! One invocation at a time per cache entry: an exclusive `flock` on the
//! entry's `lock` file, held for as long as the entry's server is in use.
//! The holder writes who it is into the file, so a waiter can say whom it
//! waits for. The kernel drops the lock when the holder exits, however it
//! exits: a killed invocation never leaves the entry locked.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

/// The lock of one entry, held until dropped.
pub struct EntryLock {
    file: File,
}

/// Who holds a lock, as its holder wrote it.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() {
        "another pgrehearse".into()
    } else {
        text.to_string()
    }
}

impl EntryLock {
    /// Take the lock of `path` without waiting; `Err(holder)` says who has it.
    pub fn try_take(path: &Path) -> std::io::Result<Result<EntryLock, String>> {
        let mut file = open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Ok(EntryLock::mine(file)?)),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(Err(holder(&mut file))),
            Err(e) => Err(e.into()),
        }
    }

    /// Take the lock of `path`, waiting for it; `waiting(holder)` is called
    /// once, before the wait, when someone else has it. Blocking: call it
    /// from a blocking thread.
    pub fn take(path: &Path, waiting: impl FnOnce(&str)) -> std::io::Result<EntryLock> {
        if let Ok(lock) = Self::try_take(path)? {
            return Ok(lock);
        }
        let mut file = open(path)?;
        waiting(&holder(&mut file));
        flock(&file, FlockOperation::LockExclusive)?;
        EntryLock::mine(file)
    }

    /// Write who we are into the lock file we now hold.
    fn mine(mut file: File) -> std::io::Result<EntryLock> {
        let args: Vec<String> = std::env::args().collect();
        let since = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
        file.set_len(0)?;
        file.rewind()?;
        write!(
            file,
            "pid {} (`{}`) since {since}",
            std::process::id(),
            args.join(" ")
        )?;
        file.flush()?;
        Ok(EntryLock { file })
    }
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_sees_the_first_and_gets_it_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = EntryLock::try_take(&path).unwrap().expect("free");
        let Err(held) = EntryLock::try_take(&path).unwrap() else {
            panic!("taken twice")
        };
        assert!(
            held.contains(&format!("pid {}", std::process::id())),
            "{held}"
        );
        drop(first);
        assert!(EntryLock::try_take(&path).unwrap().is_ok());
    }
}
