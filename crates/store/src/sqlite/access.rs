//! The application tree (one row per Appcode holding its node as JSON; Appcodes are
//! retired, never deleted, so a code can never be reused), tokens and web sessions.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{parse_enum, parse_time, text, SqliteStore};
use crate::{
    AccessStore, Result, SessionRecord, StoreError, Timestamp, TokenListing, TokenRecord, TokenRole,
};

#[async_trait]
impl AccessStore for SqliteStore {
    async fn apps(&self) -> Result<Vec<(String, String, bool)>> {
        self.blocking(|db| {
            db.read(|tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT appcode, definition, retired FROM apps ORDER BY appcode",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
        })
        .await
    }

    async fn save_apps(
        &self,
        nodes: Vec<(String, String)>,
        bindings: Vec<(String, String)>,
        now: Timestamp,
    ) -> Result<()> {
        self.blocking(move |db| {
            db.write(|tx| {
                let stamp = text(now);
                for (appcode, definition) in &nodes {
                    tx.prepare_cached(
                        "INSERT INTO apps (appcode, definition, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (appcode) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
                    )?
                    .execute(params![appcode, definition, stamp])?;
                }
                for (host, appcode) in &bindings {
                    // Binding a host not enrolled yet declares it: the binding waits for
                    // its agent to enroll.
                    tx.prepare_cached(
                        "INSERT INTO hosts (name, appcode) VALUES (?1, ?2)
                         ON CONFLICT (name) DO UPDATE SET appcode = excluded.appcode",
                    )?
                    .execute(params![host, appcode])?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn retire_apps(&self, codes: Vec<String>, now: Timestamp) -> Result<()> {
        self.blocking(move |db| {
            db.write(|tx| {
                for code in &codes {
                    tx.prepare_cached(
                        "INSERT INTO apps (appcode, definition, retired, updated_at) VALUES (?1, '{}', 1, ?2)
                         ON CONFLICT (appcode) DO UPDATE SET retired = 1, updated_at = excluded.updated_at",
                    )?
                    .execute(params![code, text(now)])?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn host_bindings(&self) -> Result<Vec<(String, String)>> {
        self.blocking(|db| {
            db.read(|tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT name, appcode FROM hosts WHERE appcode IS NOT NULL ORDER BY name",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
        })
        .await
    }

    async fn put_token(
        &self,
        name: &str,
        hash: &str,
        role: TokenRole,
        now: Timestamp,
    ) -> Result<()> {
        let (name, hash) = (name.to_string(), hash.to_string());
        self.blocking(move |db| {
            db.write(|tx| {
                tx.execute(
                    "INSERT INTO tokens (name, hash, role, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, role = excluded.role,
                       created_at = excluded.created_at, revoked_at = NULL",
                    params![name, hash, role.as_str(), text(now)],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn add_scoped_token(
        &self,
        name: &str,
        hash: &str,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let (name, hash, scope) = (
            name.to_string(),
            hash.to_string(),
            scope.map(str::to_string),
        );
        self.blocking(move |db| {
            db.write(|tx| {
                let inserted = tx.execute(
                    "INSERT INTO tokens (name, hash, role, created_at, scope) VALUES (?1, ?2, 'admin', ?3, ?4)
                     ON CONFLICT DO NOTHING",
                    params![name, hash, text(now), scope],
                )?;
                if inserted == 0 {
                    return Err(StoreError::Conflict(format!("a token named `{name}`")));
                }
                Ok(())
            })
        })
        .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let hash = hash.to_string();
        self.blocking(move |db| {
            db.read(|tx| {
                let found: Option<(String, String, bool, Option<String>)> = tx
                    .prepare_cached(
                        "SELECT name, role, revoked_at IS NOT NULL, scope FROM tokens WHERE hash = ?1",
                    )?
                    .query_row([&hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()?;
                found
                    .map(|(name, role, revoked, scope)| {
                        Ok(TokenRecord {
                            role: parse_enum(&role, TokenRole::parse, || format!("token {name}: role"))?,
                            name,
                            revoked,
                            scope,
                        })
                    })
                    .transpose()
            })
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenListing>> {
        self.blocking(|db| {
            db.read(|tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT name, role, scope, created_at, revoked_at FROM tokens ORDER BY name",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (name, role, scope, created_at, revoked_at) = row?;
                    out.push(TokenListing {
                        role: parse_enum(&role, TokenRole::parse, || {
                            format!("token {name}: role")
                        })?,
                        created_at: parse_time(&created_at, || {
                            format!("token {name}: created_at")
                        })?,
                        revoked_at: revoked_at
                            .map(|t| parse_time(&t, || format!("token {name}: revoked_at")))
                            .transpose()?,
                        scope,
                        name,
                    });
                }
                Ok(out)
            })
        })
        .await
    }

    async fn revoke_token(&self, name: &str, now: Timestamp) -> Result<bool> {
        let name = name.to_string();
        self.blocking(move |db| {
            db.write(|tx| {
                let changed = tx.execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                    params![name, text(now)],
                )?;
                Ok(changed > 0)
            })
        })
        .await
    }

    async fn create_session(&self, session: SessionRecord, now: Timestamp) -> Result<()> {
        self.blocking(move |db| {
            db.write(|tx| {
                // Logins are rare, so this is where expired sessions are swept.
                tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [text(now)])?;
                tx.execute(
                    "INSERT INTO sessions (id_hash, principal, scope, csrf, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        session.id_hash,
                        session.principal,
                        session.scope,
                        session.csrf,
                        text(session.expires_at)
                    ],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn session(&self, id_hash: &str, now: Timestamp) -> Result<Option<SessionRecord>> {
        let id_hash = id_hash.to_string();
        self.blocking(move |db| {
            db.read(|tx| {
                let found: Option<(String, Option<String>, String, String)> = tx
                    .prepare_cached(
                        "SELECT principal, scope, csrf, expires_at FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
                    )?
                    .query_row(params![id_hash, text(now)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()?;
                found
                    .map(|(principal, scope, csrf, expires_at)| {
                        Ok(SessionRecord {
                            expires_at: parse_time(&expires_at, || {
                                format!("session of {principal}: expires_at")
                            })?,
                            id_hash: id_hash.clone(),
                            principal,
                            scope,
                            csrf,
                        })
                    })
                    .transpose()
            })
        })
        .await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let id_hash = id_hash.to_string();
        self.blocking(move |db| {
            db.write(|tx| {
                tx.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
                Ok(())
            })
        })
        .await
    }
}
