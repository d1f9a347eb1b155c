//! The run-time role against a real private Postgres, tried as an attacker
//! holding its connection would: it cannot touch another tenant from a
//! scope, read callers or other tenants, become the owner, or escape with
//! `RESET ROLE`; every table is covered by a policy or has no grant; a
//! dropped scope leaves no transaction open, a leaked one is ended by
//! Postgres; lost connections come back; a login that could escape RLS is
//! refused at connect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use directory::{testing, Directory, Owner, PoolOptions};
use tokio_postgres::NoTls;

async fn demo_directory() -> (testing::TestDatabase, Owner, Directory) {
    testing::demo_directory(2)
        .await
        .expect("private postgres (apt-get install postgresql)")
}

/// A raw connection as the run-time role, as SQL injected into Sigil
/// would have it.
async fn raw_app(database: &testing::TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = database.app.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

fn denied(result: Result<impl std::fmt::Debug, tokio_postgres::Error>, what: &str) {
    let error = result.expect_err(what);
    let code = error.code().map(|c| c.code().to_owned());
    assert_eq!(code.as_deref(), Some("42501"), "{what}: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_scope_cannot_reach_other_tenants_callers_or_the_owner() {
    let (database, owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let globex = directory.tenant_by_slug("globex").await.unwrap().unwrap();
    let app = raw_app(&database).await;
    app.batch_execute(&format!(
        "BEGIN; SELECT set_config('sigil.tenant', '{}', true)",
        acme.id
    ))
    .await
    .unwrap();
    // Another tenant's status (or its own) cannot be changed.
    denied(
        app.execute(
            "UPDATE tenants SET status = 'suspended' WHERE slug = 'globex'",
            &[],
        )
        .await,
        "suspend another tenant",
    );
    app.batch_execute("ROLLBACK; BEGIN").await.unwrap();
    app.execute(
        "SELECT set_config('sigil.tenant', $1, true)",
        &[&acme.id.to_string()],
    )
    .await
    .unwrap();
    // tenants: its own row only; frontends: nothing at all.
    let rows = app.query("SELECT slug FROM tenants", &[]).await.unwrap();
    let slugs: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(slugs, vec!["acme".to_owned()]);
    denied(
        app.query("SELECT name, admin FROM frontends", &[]).await,
        "read callers",
    );
    app.batch_execute("ROLLBACK").await.unwrap();
    // Outside a scope: no tenant row, and the lookups answer one exact key.
    assert!(app
        .query("SELECT * FROM tenants", &[])
        .await
        .unwrap()
        .is_empty());
    assert!(directory.frontend(&"0".repeat(64)).await.unwrap().is_none());
    // RESET ROLE keeps it itself; it cannot become the owner.
    app.batch_execute("RESET ROLE").await.unwrap();
    let who: String = app
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "sigil_app");
    denied(
        app.batch_execute("SET ROLE postgres").await,
        "become the owner",
    );
    for table in directory::TENANT_TABLES {
        assert!(
            app.query(&format!("SELECT * FROM {table}"), &[])
                .await
                .unwrap()
                .is_empty(),
            "{table} without a scope"
        );
    }
    // The audit trail cannot be rewritten by the run-time role.
    app.batch_execute(&format!(
        "BEGIN; SELECT set_config('sigil.tenant', '{}', true)",
        globex.id
    ))
    .await
    .unwrap();
    denied(
        app.execute("DELETE FROM audit_events", &[]).await,
        "delete audit",
    );
    app.batch_execute("ROLLBACK").await.unwrap();
    drop(owner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_has_a_policy_or_no_grant_and_the_run_time_role_owns_nothing() {
    let (database, owner, _directory) = demo_directory().await;
    let (client, connection) = database.owner.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT c.relname::text, c.relrowsecurity,
                    has_table_privilege('sigil_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname = current_schema()",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 10, "the schema's tables");
    for row in &rows {
        let (table, rls, granted): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        let read_only_catalog = table == "schema_migrations";
        assert!(
            rls || !granted || read_only_catalog,
            "{table}: granted to the run-time role without row-level security"
        );
    }
    let owned: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relowner = 'sigil_app'::regrole",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owned, 0);
    // schema_migrations is readable (the version check), not writable.
    let app = raw_app(&database).await;
    denied(
        app.execute("DELETE FROM schema_migrations", &[]).await,
        "drop the schema record",
    );
    drop(owner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_could_escape_row_level_security_is_refused() {
    let database = testing::fresh_database().await.unwrap();
    // The owner (here the cluster's superuser) as the run-time login.
    let error = Directory::connect(database.owner.clone(), 1)
        .await
        .unwrap_err();
    assert!(matches!(error, directory::Error::Posture(_)), "{error}");
    assert!(error.to_string().contains("superuser"), "{error}");
    // A role that merely owns a table is refused too.
    let owner = Owner::connect(&database.owner).await.unwrap();
    owner
        .danger_execute(
            "DROP ROLE IF EXISTS sigil_sloppy; CREATE ROLE sigil_sloppy LOGIN PASSWORD 'x'; \
             CREATE TABLE sloppy (id int); ALTER TABLE sloppy OWNER TO sigil_sloppy; \
             GRANT SELECT ON schema_migrations TO sigil_sloppy",
        )
        .await
        .unwrap();
    let mut sloppy = database.app.clone();
    sloppy.user("sigil_sloppy").password("x");
    let error = Directory::connect(sloppy, 1).await.unwrap_err();
    assert!(error.to_string().contains("owns tables"), "{error}");
    owner
        .danger_execute("DROP TABLE sloppy; REVOKE ALL ON schema_migrations FROM sigil_sloppy; DROP ROLE sigil_sloppy")
        .await
        .unwrap();
    // A database not yet migrated to this version is refused by name.
    let empty = testing::empty_database().await.unwrap();
    let mut app = database.app.clone();
    app.dbname(empty.get_dbname().unwrap());
    let error = Directory::connect(app, 1).await.unwrap_err();
    assert!(matches!(error, directory::Error::Schema(_)), "{error}");
}

async fn idle_in_transaction(owner: &tokio_postgres::Client) -> i64 {
    owner
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE usename = 'sigil_app' AND datname = current_database()
                AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_scope_ends_its_transaction_and_postgres_ends_a_leaked_one() {
    let (database, _owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let (watcher, connection) = database.owner.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    // A read-only scope, dropped without commit: rolled back at once.
    for _ in 0..4 {
        let scope = directory.tenant(acme.id).await.unwrap();
        assert!(scope.user("alice").await.unwrap().is_some());
        drop(scope);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while idle_in_transaction(&watcher).await > 0 {
        assert!(
            Instant::now() < deadline,
            "a dropped scope left its connection idle in transaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The backstop: a scope held open and idle past the timeout is ended
    // by Postgres; the pool reconnects for the next scope.
    let short = Directory::connect_with(
        database.app.clone(),
        PoolOptions {
            size: 1,
            idle_in_transaction: Duration::from_millis(300),
        },
    )
    .await
    .unwrap();
    let held = short.tenant(acme.id).await.unwrap();
    assert!(held.user("alice").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        held.user("alice").await.is_err(),
        "Postgres ended the idle transaction"
    );
    drop(held);
    let again = short.tenant(acme.id).await.unwrap();
    assert!(again.user("alice").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connections_come_back_with_a_backoff() {
    let (_database, owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    // Every run-time backend of this database killed (as a restart would).
    owner
        .danger_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE usename = 'sigil_app' AND datname = current_database()",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(scope) = directory.tenant(acme.id).await {
            if let Ok(user) = scope.user("alice").await {
                assert!(user.is_some());
                break;
            }
        }
        assert!(Instant::now() < deadline, "the pool never reconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both slots work again.
    for _ in 0..4 {
        assert!(directory.tenant_by_slug("acme").await.unwrap().is_some());
    }
}

/// Migration 0004 gives the run-time role exactly these powers over the
/// deployment-level tables, each through a SECURITY DEFINER function, and
/// no right on the tables themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_time_role_has_exactly_the_onboarding_functions() {
    let (database, owner, directory) = demo_directory().await;
    let (client, connection) = database.owner.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    // The functions it may execute, besides Postgres' own.
    let rows = client
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = current_schema() AND p.prosecdef
                AND has_function_privilege('sigil_app', p.oid, 'EXECUTE')
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let functions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        functions,
        [
            "sigil_create_tenant(text,text)",
            "sigil_frontend(text)",
            "sigil_frontends()",
            "sigil_remove_frontend(text)",
            "sigil_set_tenant_status(text,text)",
            "sigil_tenant_by_slug(text)",
            "sigil_tenants()",
        ]
    );
    // Still no right on the tables: only SELECT of its own tenants row.
    for (table, privilege, expected) in [
        ("tenants", "INSERT", false),
        ("tenants", "UPDATE", false),
        ("tenants", "DELETE", false),
        ("tenants", "SELECT", true),
        ("frontends", "SELECT", false),
        ("frontends", "DELETE", false),
        ("frontends", "INSERT", false),
        ("frontends", "UPDATE", false),
        ("app_group_assignments", "DELETE", true),
        ("app_user_assignments", "INSERT", true),
    ] {
        let granted: bool = client
            .query_one(
                "SELECT has_table_privilege('sigil_app', $1::text::regclass, $2)",
                &[&table, &privilege],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(granted, expected, "{privilege} on {table}");
    }
    // The functions do what they say, and no more: a status other than
    // active or suspended is refused by the table's check.
    let made = directory
        .create_tenant("initech", "Initech, Inc.")
        .await
        .unwrap();
    assert_eq!(made.display_name, "Initech, Inc.");
    assert!(matches!(
        directory.create_tenant("initech", "again").await,
        Err(directory::Error::Conflict(_))
    ));
    let scope = directory.tenant(made.id).await.unwrap();
    assert!(
        scope.has_group("everyone").await.unwrap(),
        "everyone comes with the tenant"
    );
    drop(scope);
    let suspended = directory
        .set_tenant_active("initech", false)
        .await
        .unwrap()
        .unwrap();
    assert!(!suspended.active);
    assert!(directory
        .set_tenant_active("nosuch", false)
        .await
        .unwrap()
        .is_none());
    let app = raw_app(&database).await;
    assert!(app
        .query(
            "SELECT * FROM sigil_set_tenant_status('initech', 'deleted')",
            &[]
        )
        .await
        .is_err());
    assert!(directory.frontends().await.unwrap().is_empty());
    assert!(directory.remove_frontend("nobody").await.unwrap().is_none());
    drop(owner);
}

/// A caller holding a scope and asking for another connection gets a free
/// one, wherever the pool's rotation stands (it used to wait for the next
/// connection in turn, which could be its own: a deadlock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_holding_a_scope_gets_another_free_connection() {
    let (_database, _owner, directory) = demo_directory().await;
    let acme = directory.tenant_by_slug("acme").await.unwrap().unwrap();
    let globex = directory.tenant_by_slug("globex").await.unwrap().unwrap();
    for _ in 0..4 {
        // Held across the other calls, on one of the pool's two connections.
        let held = directory.tenant(acme.id).await.unwrap();
        // Other calls move the rotation on, to the held connection too.
        for _ in 0..3 {
            let other = tokio::time::timeout(Duration::from_secs(10), directory.tenant(globex.id))
                .await
                .expect("a free connection, not the held one")
                .unwrap();
            drop(other);
        }
        held.commit().await.unwrap();
    }
}
