//! `--store memory | sqlite:PATH | postgres://…`: which store a replay or a server uses.

use std::path::PathBuf;
use std::sync::Arc;

use super::SessionStore;
use crate::error::{Error, Result};

/// A store named on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// No store: a plain in-memory engine (the default).
    Memory,
    /// A SQLite file (created when absent).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user@host:port/db`).
    Postgres(String),
}

impl StoreSpec {
    /// Parses `memory`, `sqlite:PATH` or `postgres://…` (`postgresql://…`).
    pub fn parse(s: &str) -> Result<StoreSpec> {
        if s == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(Error::InvalidPath { path: PathBuf::new(), message: "sqlite: needs a file path (sqlite:PATH)".into() });
            }
            return Ok(StoreSpec::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(StoreSpec::Postgres(s.to_string()));
        }
        Err(Error::Store { store: s.to_string(), session: None, message: "unknown store; use memory, sqlite:PATH or postgres://user@host:port/db".into() })
    }

    /// Opens the store (`None` for `memory`).
    pub fn open(&self) -> Result<Option<Arc<dyn SessionStore>>> {
        match self {
            StoreSpec::Memory => Ok(None),
            #[cfg(feature = "sqlite")]
            StoreSpec::Sqlite(p) => Ok(Some(Arc::new(super::SqliteStore::open(p)?))),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres(url) => Ok(Some(Arc::new(super::PostgresStore::connect(url)?))),
            #[allow(unreachable_patterns)]
            other => Err(Error::Store {
                store: format!("{other:?}"),
                session: None,
                message: "this build has no such backend (cargo features `sqlite`, `postgres`)".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_parse() {
        assert_eq!(StoreSpec::parse("memory").unwrap(), StoreSpec::Memory);
        assert_eq!(StoreSpec::parse("sqlite:/tmp/x.db").unwrap(), StoreSpec::Sqlite("/tmp/x.db".into()));
        assert_eq!(StoreSpec::parse("postgres://u@h:5/d").unwrap(), StoreSpec::Postgres("postgres://u@h:5/d".into()));
        assert!(matches!(StoreSpec::parse("sqlite:"), Err(Error::InvalidPath { .. })));
        assert!(matches!(StoreSpec::parse("redis://x"), Err(Error::Store { .. })));
    }
}
