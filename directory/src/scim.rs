//! What SCIM provisioning reads and writes (migration 0005): tenants'
//! SCIM bearer tokens (kept as SHA-256 hashes), and users and groups with
//! their version counters, creation times and external ids. Every query is
//! a method of [`TenantScope`], so row-level security sees one tenant.
//!
//! Filters arrive as a SQL condition written by the SCIM library from the
//! client's `filter` (its values bound as parameters, never spliced); the
//! condition may name the aliases documented on [`TenantScope::scim_users`]
//! and [`TenantScope::scim_groups`].

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::db::{millis, Directory, TenantScope};
use crate::Error;

/// One SCIM token as listed (never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimToken {
    /// Its name.
    pub name: String,
    /// When it was made, ms since the epoch.
    pub created_ms: u64,
    /// When it was revoked, ms since the epoch.
    pub revoked_ms: Option<u64>,
}

/// A user as SCIM sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserRow {
    /// Stable id (SCIM `id`).
    pub user_id: String,
    /// Login (SCIM `userName`).
    pub login: String,
    /// Primary email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// `active`, `suspended` or `deactivated`.
    pub status: String,
    /// The SCIM attributes without a column.
    pub profile: serde_json::Value,
    /// The client's id for the user.
    pub external_id: Option<String>,
    /// Version counter (the ETag).
    pub version: i64,
    /// Made, ms since the epoch.
    pub created_ms: u64,
    /// Last changed, ms since the epoch.
    pub updated_ms: u64,
    /// Groups: (group id, name).
    pub groups: Vec<(String, String)>,
}

/// What a SCIM write stores for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserWrite {
    /// Login (SCIM `userName`).
    pub login: String,
    /// Primary email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Whether the user is active.
    pub active: bool,
    /// The SCIM attributes without a column.
    pub profile: serde_json::Value,
    /// The client's id for the user.
    pub external_id: Option<String>,
}

/// A group as SCIM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupRow {
    /// Stable id (SCIM `id`).
    pub group_id: String,
    /// Name (SCIM `displayName`).
    pub name: String,
    /// The client's id for the group.
    pub external_id: Option<String>,
    /// Version counter (the ETag).
    pub version: i64,
    /// Made, ms since the epoch.
    pub created_ms: u64,
    /// Last changed, ms since the epoch.
    pub updated_ms: u64,
    /// Members: (user id, login).
    pub members: Vec<(String, String)>,
}

/// A page of a SCIM list.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimPage<T> {
    /// Rows matching the filter, in all.
    pub total: i64,
    /// This page's rows.
    pub rows: Vec<T>,
}

/// A filter condition with its parameters (numbered from `$1`).
pub type Condition<'a> = (&'a str, &'a [&'a (dyn ToSql + Sync)]);

fn conflict_or(error: tokio_postgres::Error, what: &str) -> Error {
    if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        Error::Conflict(what.to_owned())
    } else {
        Error::Postgres(error)
    }
}

const USER_COLUMNS: &str = "u.user_id, u.login, u.email, u.display_name, u.status, u.profile,
    u.external_id, u.version, u.created_at, u.updated_at,
    coalesce((SELECT array_agg(g.group_id || chr(31) || g.name ORDER BY g.name)
                FROM memberships m JOIN groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id
               WHERE m.tenant_id = u.tenant_id AND m.user_id = u.user_id), '{}')";

const GROUP_COLUMNS: &str = "g.group_id, g.name, g.external_id, g.version, g.created_at, g.updated_at,
    coalesce((SELECT array_agg(m.user_id || chr(31) || u.login ORDER BY u.login)
                FROM memberships m JOIN users u ON u.tenant_id = m.tenant_id AND u.user_id = m.user_id
               WHERE m.tenant_id = g.tenant_id AND m.group_id = g.group_id), '{}')";

fn pairs(joined: Vec<String>) -> Vec<(String, String)> {
    joined
        .into_iter()
        .filter_map(|p| {
            p.split_once('\u{1f}')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        })
        .collect()
}

fn user_of(row: &Row, at: usize) -> Result<ScimUserRow, Error> {
    Ok(ScimUserRow {
        user_id: row.try_get(at)?,
        login: row.try_get(at + 1)?,
        email: row.try_get(at + 2)?,
        display_name: row.try_get(at + 3)?,
        status: row.try_get(at + 4)?,
        profile: row.try_get(at + 5)?,
        external_id: row.try_get(at + 6)?,
        version: row.try_get(at + 7)?,
        created_ms: millis(row.try_get(at + 8)?),
        updated_ms: millis(row.try_get(at + 9)?),
        groups: pairs(row.try_get(at + 10)?),
    })
}

fn group_of(row: &Row, at: usize) -> Result<ScimGroupRow, Error> {
    Ok(ScimGroupRow {
        group_id: row.try_get(at)?,
        name: row.try_get(at + 1)?,
        external_id: row.try_get(at + 2)?,
        version: row.try_get(at + 3)?,
        created_ms: millis(row.try_get(at + 4)?),
        updated_ms: millis(row.try_get(at + 5)?),
        members: pairs(row.try_get(at + 6)?),
    })
}

/// `LIMIT`/`OFFSET` of a 1-based SCIM page.
fn window(start_index: i64, count: i64) -> (i64, i64) {
    (count.max(0), start_index.max(1) - 1)
}

impl Directory {
    /// [`TenantScope::scim_users`] in a tenant scope of its own, with the
    /// scope's `BEGIN` sent together with the reads: one round trip to
    /// Postgres for a `GET /Users` once its statements are prepared.
    ///
    /// # Errors
    /// [`Error::Postgres`], or [`Error::Unreachable`] while reconnecting.
    pub async fn scim_users_page(
        &self,
        tenant_id: i64,
        condition: Condition<'_>,
        start_index: i64,
        count: i64,
    ) -> Result<ScimPage<ScimUserRow>, Error> {
        let scope = self.tenant_unbegun(tenant_id).await?;
        users_page(&scope, condition, start_index, count, true).await
    }
}

async fn users_page(
    scope: &TenantScope<'_>,
    condition: Condition<'_>,
    start_index: i64,
    count: i64,
    begin: bool,
) -> Result<ScimPage<ScimUserRow>, Error> {
    let (clause, params) = condition;
    let (total, rows) = scope
        .page(
            &format!("SELECT count(*) FROM users u WHERE {clause}"),
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE {clause} ORDER BY u.user_id"),
            params,
            window(start_index, count),
            begin,
        )
        .await?;
    Ok(ScimPage {
        total,
        rows: rows
            .iter()
            .map(|r| user_of(r, 0))
            .collect::<Result<_, _>>()?,
    })
}

impl TenantScope<'_> {
    /// A list's total (`count_sql`, over `params`) and page (`ordered_sql`
    /// over `params`, limited and offset by `window`), both from cached
    /// prepared statements and sent together: one round trip to Postgres
    /// once the statements are prepared (a `GET /Users?filter=` took four:
    /// prepare and run, twice, one after the other).
    ///
    /// The first page has no `OFFSET`: with `OFFSET $n` Postgres costs
    /// its generic plan above the custom one and plans the query again on
    /// every execution (0.4-1.6 ms for a `userName eq` lookup, longer than
    /// running it); without it the cached generic plan is used.
    ///
    /// `begin`: the scope's `BEGIN` was not sent yet
    /// ([`Directory::tenant_unbegun`]); it goes first, in the same round
    /// trip.
    async fn page(
        &self,
        count_sql: &str,
        ordered_sql: &str,
        params: &[&(dyn ToSql + Sync)],
        (limit, offset): (i64, i64),
        begin: bool,
    ) -> Result<(i64, Vec<Row>), Error> {
        let n = params.len();
        let page_sql = if offset == 0 {
            format!("{ordered_sql} LIMIT ${}", n + 1)
        } else {
            format!("{ordered_sql} LIMIT ${} OFFSET ${}", n + 1, n + 2)
        };
        let (count, page) =
            futures_util::future::try_join(self.prepared(count_sql), self.prepared(&page_sql))
                .await?;
        let mut all: Vec<&(dyn ToSql + Sync)> = params.to_vec();
        all.push(&limit);
        if offset != 0 {
            all.push(&offset);
        }
        let opened = async {
            if begin {
                self.begin().await
            } else {
                Ok(())
            }
        };
        // Polled in this order, so sent in this order: BEGIN, count, page.
        let ((), total, rows) = futures_util::future::try_join3(
            opened,
            async { Ok(self.client().query_one(&count, params).await?) },
            async { Ok(self.client().query(&page, &all).await?) },
        )
        .await?;
        Ok((total.try_get(0)?, rows))
    }

    /// The tenant's SCIM tokens, by name.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn scim_tokens(&self) -> Result<Vec<ScimToken>, Error> {
        let rows = self
            .client()
            .query(
                "SELECT name, created_at, revoked_at FROM scim_tokens ORDER BY name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ScimToken {
                    name: r.try_get(0)?,
                    created_ms: millis(r.try_get(1)?),
                    revoked_ms: r
                        .try_get::<_, Option<std::time::SystemTime>>(2)?
                        .map(millis),
                })
            })
            .collect()
    }

    /// The names and hashes of the tenant's tokens not revoked.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn scim_token_hashes(&self) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let rows = self
            .client()
            .query(
                "SELECT name, token_hash FROM scim_tokens WHERE revoked_at IS NULL",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Stores a new token's SHA-256 under `name`.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the name exists (revoked or not);
    /// [`Error::Postgres`].
    pub async fn add_scim_token(&self, name: &str, hash: &[u8; 32]) -> Result<(), Error> {
        self.client()
            .execute(
                "INSERT INTO scim_tokens (tenant_id, name, token_hash) VALUES ($1, $2, $3)",
                &[&self.tenant_id(), &name, &hash.as_slice()],
            )
            .await
            .map_err(|e| conflict_or(e, &format!("a SCIM token named {name} exists")))?;
        Ok(())
    }

    /// Revokes token `name`; false when there is none (or it was revoked).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn revoke_scim_token(&self, name: &str) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE scim_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
                &[&name],
            )
            .await?;
        Ok(n > 0)
    }

    /// The user with id `user_id`, as SCIM shows it.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn scim_user(&self, user_id: &str) -> Result<Option<ScimUserRow>, Error> {
        let statement = self
            .prepared(&format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.user_id = $1"
            ))
            .await?;
        let row = self.client().query_opt(&statement, &[&user_id]).await?;
        row.map(|r| user_of(&r, 0)).transpose()
    }

    /// A page of users matching `condition` (over alias `u` of `users`),
    /// ordered by id; `start_index` is 1-based.
    ///
    /// # Errors
    /// [`Error::Postgres`] (also for a condition Postgres refuses).
    pub async fn scim_users(
        &self,
        condition: Condition<'_>,
        start_index: i64,
        count: i64,
    ) -> Result<ScimPage<ScimUserRow>, Error> {
        users_page(self, condition, start_index, count, false).await
    }

    /// Creates a user with id `user_id`.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the login is taken; [`Error::Postgres`].
    pub async fn insert_scim_user(&self, user_id: &str, user: &ScimUserWrite) -> Result<(), Error> {
        let status = if user.active { "active" } else { "deactivated" };
        self.client()
            .execute(
                "INSERT INTO users (tenant_id, user_id, login, email, display_name, status, profile, external_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &self.tenant_id(),
                    &user_id,
                    &user.login,
                    &user.email,
                    &user.display_name,
                    &status,
                    &user.profile,
                    &user.external_id,
                ],
            )
            .await
            .map_err(|e| conflict_or(e, "userName is taken"))?;
        Ok(())
    }

    /// Inserts users `(id, write)` in one statement (a SCIM `/Bulk`
    /// request's creations); a row whose login (or id) is taken, by an
    /// existing user or an earlier row of the same call, is skipped, not
    /// an error. Returns, per row in order, whether it was inserted.
    ///
    /// # Errors
    /// [`Error::Postgres`] (nothing of the call was written).
    pub async fn insert_scim_users(
        &self,
        users: &[(&str, &ScimUserWrite)],
    ) -> Result<Vec<bool>, Error> {
        let ids: Vec<&str> = users.iter().map(|(id, _)| *id).collect();
        let logins: Vec<&str> = users.iter().map(|(_, u)| u.login.as_str()).collect();
        let emails: Vec<&str> = users.iter().map(|(_, u)| u.email.as_str()).collect();
        let names: Vec<&str> = users.iter().map(|(_, u)| u.display_name.as_str()).collect();
        let statuses: Vec<&str> = users
            .iter()
            .map(|(_, u)| if u.active { "active" } else { "deactivated" })
            .collect();
        let profiles: Vec<&serde_json::Value> = users.iter().map(|(_, u)| &u.profile).collect();
        let externals: Vec<Option<&str>> = users
            .iter()
            .map(|(_, u)| u.external_id.as_deref())
            .collect();
        // WITH ORDINALITY keeps the request's order: of two rows with one
        // login, the earlier wins, as one insert after the other would.
        let rows = self
            .client()
            .query(
                "INSERT INTO users (tenant_id, user_id, login, email, display_name, status, profile, external_id)
                 SELECT $1, r.id, r.login, r.email, r.name, r.status, r.profile, r.external
                   FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::text[])
                        WITH ORDINALITY AS r(id, login, email, name, status, profile, external, n)
                  ORDER BY r.n
                 ON CONFLICT DO NOTHING
                 RETURNING user_id",
                &[
                    &self.tenant_id(),
                    &ids,
                    &logins,
                    &emails,
                    &names,
                    &statuses,
                    &profiles,
                    &externals,
                ],
            )
            .await?;
        let inserted: std::collections::HashSet<String> =
            rows.iter().map(|r| r.get::<_, String>(0)).collect();
        Ok(ids.iter().map(|id| inserted.contains(*id)).collect())
    }

    /// Marks a savepoint `name` (a plain identifier) in this transaction.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn savepoint(&self, name: &'static str) -> Result<(), Error> {
        self.client()
            .batch_execute(&format!("SAVEPOINT {name}"))
            .await?;
        Ok(())
    }

    /// Undoes what followed savepoint `name` (which stays).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn rollback_to(&self, name: &'static str) -> Result<(), Error> {
        self.client()
            .batch_execute(&format!("ROLLBACK TO SAVEPOINT {name}"))
            .await?;
        Ok(())
    }

    /// Replaces a user's SCIM attributes and bumps its version. Its status
    /// is set to active when `user.active`; deactivating is the caller's
    /// (the strong path), so an inactive write leaves the status as it is.
    /// Returns false when the user is gone.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the login is taken; [`Error::Postgres`].
    pub async fn update_scim_user(
        &self,
        user_id: &str,
        user: &ScimUserWrite,
    ) -> Result<bool, Error> {
        let n = self
            .client()
            .execute(
                "UPDATE users SET login = $2, email = $3, display_name = $4, profile = $5, external_id = $6,
                        status = CASE WHEN $7 THEN 'active' ELSE status END,
                        version = version + 1, updated_at = now()
                  WHERE user_id = $1",
                &[
                    &user_id,
                    &user.login,
                    &user.email,
                    &user.display_name,
                    &user.profile,
                    &user.external_id,
                    &user.active,
                ],
            )
            .await
            .map_err(|e| conflict_or(e, "userName is taken"))?;
        Ok(n > 0)
    }

    /// Bumps a user's version (after a change made elsewhere, e.g. a
    /// deactivation).
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn touch_scim_user(&self, user_id: &str) -> Result<(), Error> {
        self.client()
            .execute(
                "UPDATE users SET version = version + 1, updated_at = now() WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        Ok(())
    }

    /// Deletes a user (its memberships go with it); false when unknown.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn delete_scim_user(&self, user_id: &str) -> Result<bool, Error> {
        let n = self
            .client()
            .execute("DELETE FROM users WHERE user_id = $1", &[&user_id])
            .await?;
        Ok(n > 0)
    }

    /// The group with id `group_id`.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn scim_group(&self, group_id: &str) -> Result<Option<ScimGroupRow>, Error> {
        let statement = self
            .prepared(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.group_id = $1"
            ))
            .await?;
        let row = self.client().query_opt(&statement, &[&group_id]).await?;
        row.map(|r| group_of(&r, 0)).transpose()
    }

    /// A page of groups matching `condition` (over alias `g` of `groups`),
    /// ordered by id; `start_index` is 1-based.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn scim_groups(
        &self,
        condition: Condition<'_>,
        start_index: i64,
        count: i64,
    ) -> Result<ScimPage<ScimGroupRow>, Error> {
        let (clause, params) = condition;
        let (total, rows) = self
            .page(
                &format!("SELECT count(*) FROM groups g WHERE {clause}"),
                &format!("SELECT {GROUP_COLUMNS} FROM groups g WHERE {clause} ORDER BY g.group_id"),
                params,
                window(start_index, count),
                false,
            )
            .await?;
        Ok(ScimPage {
            total,
            rows: rows
                .iter()
                .map(|r| group_of(r, 0))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Creates or replaces group `group_id` with exactly `members` (user
    /// ids; unknown ones are refused). `expect_new`: refuse an existing id.
    /// Returns the user ids whose groups changed.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the name is taken; [`Error::Invalid`] for
    /// an unknown member; [`Error::Postgres`].
    pub async fn write_scim_group(
        &self,
        group_id: &str,
        name: &str,
        external_id: Option<&str>,
        members: &[String],
        expect_new: bool,
    ) -> Result<Vec<String>, Error> {
        if expect_new {
            self.client()
                .execute(
                    "INSERT INTO groups (tenant_id, group_id, name, external_id) VALUES ($1, $2, $3, $4)",
                    &[&self.tenant_id(), &group_id, &name, &external_id],
                )
                .await
                .map_err(|e| conflict_or(e, "displayName is taken"))?;
        } else {
            self.client()
                .execute(
                    "UPDATE groups SET name = $2, external_id = $3, version = version + 1, updated_at = now() WHERE group_id = $1",
                    &[&group_id, &name, &external_id],
                )
                .await
                .map_err(|e| conflict_or(e, "displayName is taken"))?;
        }
        let known: i64 = self
            .client()
            .query_one(
                "SELECT count(*) FROM users WHERE user_id = ANY($1)",
                &[&members],
            )
            .await?
            .try_get(0)?;
        let mut unique = members.to_vec();
        unique.sort();
        unique.dedup();
        if usize::try_from(known).unwrap_or(0) != unique.len() {
            return Err(Error::Invalid(
                "a member is not a user of this tenant".into(),
            ));
        }
        let removed = self
            .client()
            .query(
                "DELETE FROM memberships WHERE group_id = $1 AND NOT (user_id = ANY($2)) RETURNING user_id",
                &[&group_id, &unique],
            )
            .await?;
        let added = self
            .client()
            .query(
                "INSERT INTO memberships (tenant_id, group_id, user_id)
                 SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING RETURNING user_id",
                &[&self.tenant_id(), &group_id, &unique],
            )
            .await?;
        removed
            .iter()
            .chain(added.iter())
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    /// Deletes a group; its former members' ids, or `None` when unknown.
    ///
    /// # Errors
    /// [`Error::Postgres`].
    pub async fn delete_scim_group(&self, group_id: &str) -> Result<Option<Vec<String>>, Error> {
        let members = self
            .client()
            .query(
                "SELECT user_id FROM memberships WHERE group_id = $1",
                &[&group_id],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<String>, _>>()?;
        let n = self
            .client()
            .execute("DELETE FROM groups WHERE group_id = $1", &[&group_id])
            .await?;
        Ok((n > 0).then_some(members))
    }
}
