//! The node's durable revocation log: every revocation this node starts is
//! appended and fsync'd before the protocol hears of it, and handed back to
//! the state machine at the next start (see docs/sessions.md, "The case
//! memory alone cannot cover"). One JSON line per revocation.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::replication::Revocation;

/// An append-only file of revocations.
#[derive(Debug)]
pub struct RevocationLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl RevocationLog {
    /// Opens (or creates) the log and returns it with what it holds. A torn
    /// last line (a crash mid-write, never acknowledged) is dropped.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(path: &Path) -> std::io::Result<(RevocationLog, Vec<Revocation>)> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut recovered = Vec::new();
        let mut good = 0u64;
        if let Ok(file) = File::open(path) {
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 {
                if !line.ends_with('\n') {
                    break;
                }
                match serde_json::from_str::<Revocation>(line.trim_end()) {
                    Ok(revocation) => recovered.push(revocation),
                    Err(_) => break,
                }
                good += line.len() as u64;
                line.clear();
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        file.set_len(good)?;
        Ok((
            RevocationLog {
                path: path.to_owned(),
                file: Mutex::new(file),
            },
            recovered,
        ))
    }

    /// Appends one revocation and syncs it to disk.
    ///
    /// # Errors
    /// I/O errors: the revoke must then fail, not proceed undurably.
    pub fn append(&self, revocation: &Revocation) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(revocation).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(&line)?;
        file.sync_data()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
