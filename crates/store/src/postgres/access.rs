//! The application tree, API tokens and web sessions.

use async_trait::async_trait;

use super::{exec, known, query, query_opt, PostgresStore};
use crate::contract::AccessStore;
use crate::types::*;
use crate::{Result, StoreError};

#[async_trait]
impl AccessStore for PostgresStore {
    async fn apps(&self) -> Result<Vec<(String, String, bool)>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT appcode, definition, retired FROM apps ORDER BY appcode",
            &[],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((
                row.try_get("appcode")?,
                row.try_get("definition")?,
                row.try_get("retired")?,
            ));
        }
        Ok(out)
    }

    async fn save_apps(
        &self,
        nodes: Vec<(String, String)>,
        bindings: Vec<(String, String)>,
        now: Timestamp,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (appcode, definition) in &nodes {
            exec(
                &tx,
                "INSERT INTO apps (appcode, definition, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (appcode) DO UPDATE SET definition = EXCLUDED.definition,
                   updated_at = EXCLUDED.updated_at",
                &[appcode, definition, &now],
            )
            .await?;
        }
        for (host, appcode) in &bindings {
            // Binding a host not enrolled yet declares it: the binding waits for its
            // agent to enroll.
            exec(
                &tx,
                "INSERT INTO hosts (name, appcode) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET appcode = EXCLUDED.appcode",
                &[host, appcode],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn retire_apps(&self, codes: Vec<String>, now: Timestamp) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for code in &codes {
            exec(&tx, "INSERT INTO apps (appcode, definition, retired, updated_at) VALUES ($1, '{}', true, $2)
                 ON CONFLICT (appcode) DO UPDATE SET retired = true, updated_at = EXCLUDED.updated_at",
                &[code, &now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn host_bindings(&self) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT name, appcode FROM hosts WHERE appcode IS NOT NULL ORDER BY name",
            &[],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((row.try_get("name")?, row.try_get("appcode")?));
        }
        Ok(out)
    }

    async fn put_token(
        &self,
        name: &str,
        hash: &str,
        role: TokenRole,
        now: Timestamp,
    ) -> Result<()> {
        let client = self.client().await?;
        exec(
            &client,
            "INSERT INTO tokens (name, hash, role, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash, role = EXCLUDED.role,
                   created_at = EXCLUDED.created_at, revoked_at = NULL",
            &[&name, &hash, &role.as_str(), &now],
        )
        .await?;
        Ok(())
    }

    async fn add_scoped_token(
        &self,
        name: &str,
        hash: &str,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let client = self.client().await?;
        let added = exec(&client, "INSERT INTO tokens (name, hash, role, created_at, scope) VALUES ($1, $2, 'admin', $3, $4)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &hash, &now, &scope],
            )
            .await?;
        if added == 0 {
            return Err(StoreError::Conflict(format!("token `{name}`")));
        }
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let client = self.client().await?;
        let Some(row) = query_opt(&client, "SELECT name, role, revoked_at IS NOT NULL AS revoked, scope FROM tokens WHERE hash = $1",
                &[&hash],
            )
            .await?
        else {
            return Ok(None);
        };
        let name: String = row.try_get("name")?;
        let role: String = row.try_get("role")?;
        Ok(Some(TokenRecord {
            role: known(
                &role,
                TokenRole::parse,
                format_args!("token `{name}`"),
                "role",
            )?,
            revoked: row.try_get("revoked")?,
            scope: row.try_get("scope")?,
            name,
        }))
    }

    async fn tokens(&self) -> Result<Vec<TokenListing>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT name, role, scope, created_at, revoked_at FROM tokens ORDER BY name",
            &[],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get("name")?;
            let role: String = row.try_get("role")?;
            out.push(TokenListing {
                role: known(
                    &role,
                    TokenRole::parse,
                    format_args!("token `{name}`"),
                    "role",
                )?,
                scope: row.try_get("scope")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
                name,
            });
        }
        Ok(out)
    }

    async fn revoke_token(&self, name: &str, now: Timestamp) -> Result<bool> {
        let client = self.client().await?;
        let changed = exec(
            &client,
            "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            &[&name, &now],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn create_session(&self, session: SessionRecord, now: Timestamp) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        exec(&tx, "DELETE FROM sessions WHERE expires_at <= $1", &[&now]).await?;
        exec(&tx, "INSERT INTO sessions (id_hash, principal, scope, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id_hash) DO UPDATE SET principal = EXCLUDED.principal,
               scope = EXCLUDED.scope, csrf = EXCLUDED.csrf, expires_at = EXCLUDED.expires_at",
            &[
                &session.id_hash,
                &session.principal,
                &session.scope,
                &session.csrf,
                &session.expires_at,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, now: Timestamp) -> Result<Option<SessionRecord>> {
        let client = self.client().await?;
        let Some(row) = query_opt(
            &client,
            "SELECT id_hash, principal, scope, csrf, expires_at FROM sessions
                 WHERE id_hash = $1 AND expires_at > $2",
            &[&id_hash, &now],
        )
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            id_hash: row.try_get("id_hash")?,
            principal: row.try_get("principal")?,
            scope: row.try_get("scope")?,
            csrf: row.try_get("csrf")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let client = self.client().await?;
        exec(
            &client,
            "DELETE FROM sessions WHERE id_hash = $1",
            &[&id_hash],
        )
        .await?;
        Ok(())
    }
}
