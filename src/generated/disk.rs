//! Generated summaries on disk: an append-only file of (key, summary) records, so a replay (or a
//! restarted host) finds every summary already generated instead of asking the model again.
//!
//! Format (integers little-endian), following the embedding cache (`crate::dense::disk`):
//!
//! ```text
//! header  "CTXWGEN1" | checksum: u64
//! record  key: u128 | accepted: u8 | unsupported: u32 | latency_ms: u32 | length: u32 | text (UTF-8) | checksum: u64
//! ```
//!
//! The key already covers the model, the prompt version and the run's content. Each checksum is
//! 64-bit FNV-1a of the bytes before it in its header or record. A damaged file is never an error:
//! a bad header starts it afresh, a record cut short or failing its checksum ends it there (the file
//! is truncated to the last good record).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::dense::fnv::checksum;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CTXWGEN1";
/// Longest summary text a record may hold; a longer length field means a damaged record.
const MAX_TEXT: usize = 1 << 20;

/// A generated summary as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Whether the guard accepted it (a rejected one is remembered so it is not asked for again).
    pub(crate) accepted: bool,
    /// Terms it mentions that occur nowhere in its run.
    pub(crate) unsupported: u32,
    /// How long the model took, ms.
    pub(crate) latency_ms: u32,
    /// The text.
    pub(crate) text: String,
}

/// The open file and what it held when opened.
pub(crate) struct SummaryDisk {
    path: PathBuf,
    file: File,
}

fn header() -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&checksum(MAGIC).to_le_bytes());
    h
}

fn record(key: u128, s: &Stored) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + 13 + s.text.len() + 8);
    r.extend_from_slice(&key.to_le_bytes());
    r.push(u8::from(s.accepted));
    r.extend_from_slice(&s.unsupported.to_le_bytes());
    r.extend_from_slice(&s.latency_ms.to_le_bytes());
    r.extend_from_slice(&(s.text.len() as u32).to_le_bytes());
    r.extend_from_slice(s.text.as_bytes());
    let c = checksum(&r);
    r.extend_from_slice(&c.to_le_bytes());
    r
}

/// Reads one record at the reader's position: `Ok(None)` at a clean end, `Err(())` when damaged.
fn read_record(r: &mut impl Read) -> std::result::Result<Option<(u128, Stored, u64)>, ()> {
    let mut fixed = [0u8; 29];
    match r.read(&mut fixed[..1]) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(_) => return Err(()),
    }
    r.read_exact(&mut fixed[1..]).map_err(|_| ())?;
    let le32 = |a: usize| u32::from_le_bytes([fixed[a], fixed[a + 1], fixed[a + 2], fixed[a + 3]]);
    let len = le32(25) as usize;
    if len > MAX_TEXT {
        return Err(());
    }
    let mut rest = vec![0u8; len + 8];
    r.read_exact(&mut rest).map_err(|_| ())?;
    let mut body = fixed.to_vec();
    body.extend_from_slice(&rest[..len]);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&rest[len..]);
    if checksum(&body) != u64::from_le_bytes(sum) {
        return Err(());
    }
    let mut key = [0u8; 16];
    key.copy_from_slice(&fixed[..16]);
    let text = String::from_utf8(rest[..len].to_vec()).map_err(|_| ())?;
    let s = Stored { accepted: fixed[16] == 1, unsupported: le32(17), latency_ms: le32(21), text };
    Ok(Some((u128::from_le_bytes(key), s, (29 + len + 8) as u64)))
}

impl SummaryDisk {
    /// Opens (or creates) the file at `path` and returns every intact record in it.
    pub(crate) fn open(path: &Path) -> Result<(SummaryDisk, FxHashMap<u128, Stored>)> {
        let io = |e| Error::io(path, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let mut found = FxHashMap::default();
        let mut head = [0u8; 16];
        let good_header = file.read_exact(&mut head).is_ok() && head[..] == header()[..];
        let mut end = head.len() as u64;
        if good_header {
            let mut r = BufReader::new(&mut file);
            while let Ok(Some((key, s, n))) = read_record(&mut r) {
                found.insert(key, s);
                end += n;
            }
        } else {
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(&header()).map_err(io)?;
        }
        // Anything after the last good record is damaged: cut it off.
        file.set_len(end).map_err(io)?;
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((SummaryDisk { path: path.to_path_buf(), file }, found))
    }

    /// Appends one record.
    pub(crate) fn append(&mut self, key: u128, s: &Stored) -> Result<()> {
        self.file.write_all(&record(key, s)).map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str) -> Stored {
        Stored { accepted: true, unsupported: 1, latency_ms: 42, text: text.to_string() }
    }

    #[test]
    fn records_survive_a_reopen_and_a_cut_tail_is_repaired() {
        let dir = std::env::temp_dir().join(format!("ctxwin-gen-disk-{}", std::process::id()));
        let path = dir.join("summaries.bin");
        let _ = std::fs::remove_file(&path);
        {
            let (mut d, found) = SummaryDisk::open(&path).unwrap();
            assert!(found.is_empty());
            d.append(7, &stored("Decisions\n- keep")).unwrap();
            d.append(9, &stored("second")).unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        let (_, found) = SummaryDisk::open(&path).unwrap();
        assert_eq!(found.get(&7), Some(&stored("Decisions\n- keep")));
        assert_eq!(found.len(), 2);
        // Cut the last record short: the first survives and the file is truncated after it.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 3).unwrap();
        let (mut d, found) = SummaryDisk::open(&path).unwrap();
        assert_eq!(found.len(), 1);
        d.append(11, &stored("third")).unwrap();
        let (_, found) = SummaryDisk::open(&path).unwrap();
        assert_eq!(found.keys().copied().collect::<std::collections::BTreeSet<_>>(), [7, 11].into());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
