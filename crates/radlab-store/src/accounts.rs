//! Accounts, browser sessions and API tokens in the catalog. This module stores and finds;
//! it never sees a password or a token in clear: callers hash them first (the server hashes
//! passwords with argon2id, tokens with BLAKE3).

use serde::Serialize;
use sqlx::Row;

use crate::catalog::{Catalog, now_rfc3339};
use crate::error::{Result, StoreError};

/// A site role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteRole {
    Admin,
    User,
}

impl SiteRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            SiteRole::Admin => "admin",
            SiteRole::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<SiteRole> {
        match s {
            "admin" => Some(SiteRole::Admin),
            "user" => Some(SiteRole::User),
            _ => None,
        }
    }
}

/// An account as the API shows it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub user_id: String,
    pub username: String,
    pub site_role: SiteRole,
    pub disabled: bool,
    pub created_at: String,
}

/// A user name: 1 to 64 of letters, digits, '.', '_', '-', '@'.
pub fn check_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "user name {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

fn user_of(r: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = r.try_get("site_role")?;
    Ok(User {
        user_id: r.try_get("user_id")?,
        username: r.try_get("username")?,
        site_role: SiteRole::parse(&role).ok_or_else(|| {
            StoreError::Database(format!("unknown site role {role:?} in the catalog"))
        })?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

/// The columns of an account, as `User` reads them (a macro, so queries stay literals).
macro_rules! user_columns {
    () => {
        "u.user_id, u.username, u.site_role, u.disabled, u.created_at"
    };
}

impl Catalog {
    /// Add an account with an already hashed password. An existing name is an error.
    pub async fn create_user(
        &self,
        user_id: &str,
        username: &str,
        password_hash: &str,
        role: SiteRole,
    ) -> Result<User> {
        check_username(username)?;
        let created_at = now_rfc3339();
        let done = sqlx::query(
            "INSERT INTO users (user_id, username, password_hash, site_role, disabled, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(&created_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(StoreError::Config(format!(
                "user {username} exists already"
            )));
        }
        Ok(User {
            user_id: user_id.to_string(),
            username: username.to_string(),
            site_role: role,
            disabled: false,
            created_at,
        })
    }

    /// Replace an account's password hash.
    pub async fn set_password_hash(&self, username: &str, password_hash: &str) -> Result<()> {
        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE username = $1")
            .bind(username)
            .bind(password_hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::Config(format!("no user {username}")));
        }
        Ok(())
    }

    /// An account and its password hash, by name (for signing in).
    pub async fn user_for_login(&self, username: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", u.password_hash FROM users u WHERE u.username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((user_of(&r)?, r.try_get("password_hash")?))),
            None => Ok(None),
        }
    }

    /// Every account, by name.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u ORDER BY u.username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_of).collect()
    }

    /// How many accounts exist (the first one made is the admin).
    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Record a browser session (by the hash of its token) until `expires_at` (Unix seconds).
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now_rfc3339())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live session of a token hash at time `now` (Unix seconds): its user (enabled)
    /// and CSRF token.
    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<(User, String)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", s.csrf_token FROM sessions s JOIN users u \
             ON u.user_id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2 \
             AND u.disabled = 0"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((user_of(&r)?, r.try_get("csrf_token")?))),
            None => Ok(None),
        }
    }

    /// End a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Record an API token (by the hash of its value).
    pub async fn create_api_token(
        &self,
        token_hash: &str,
        user_id: &str,
        name: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_id, name, created_at, revoked) \
             VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(name)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a live API token hash (enabled accounts only).
    pub async fn api_token_user(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM api_tokens t JOIN users u ON u.user_id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked = 0 AND u.disabled = 0"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_of).transpose()
    }
}
