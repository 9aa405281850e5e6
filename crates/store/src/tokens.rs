use rusqlite::{params, OptionalExtension};

use crate::{Result, Store};

/// A stored API token: only its SHA-256 hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    pub role: String,
    pub revoked: bool,
    /// The Appcode whose subtree this token is limited to; `None` for all.
    pub scope: Option<String>,
}

impl Store {
    /// Adds a token by hash; a token with the same name is replaced (rotation).
    pub fn put_token(&self, name: &str, hash: &str, role: &str, now: &str) -> Result<()> {
        self.writer().execute(
            "INSERT INTO tokens (name, hash, role, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, role = excluded.role,
               created_at = excluded.created_at, revoked_at = NULL",
            params![name, hash, role, now],
        )?;
        Ok(())
    }

    /// Adds a named token limited to `scope` (an Appcode's subtree). Fails if the name exists.
    pub fn add_scoped_token(
        &self,
        name: &str,
        hash: &str,
        scope: Option<&str>,
        now: &str,
    ) -> Result<()> {
        self.writer().execute(
            "INSERT INTO tokens (name, hash, role, created_at, scope) VALUES (?1, ?2, 'admin', ?3, ?4)",
            params![name, hash, now, scope],
        )?;
        Ok(())
    }

    pub fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT name, role, revoked_at IS NOT NULL, scope FROM tokens WHERE hash = ?1",
                [hash],
                |r| {
                    Ok(TokenRecord {
                        name: r.get(0)?,
                        role: r.get(1)?,
                        revoked: r.get(2)?,
                        scope: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }
}
