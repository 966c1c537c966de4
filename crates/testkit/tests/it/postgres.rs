use std::{net::TcpListener, panic, sync::Arc, sync::Barrier, thread};

use covenant_testkit::{Error, PgCluster, Watched, postgres};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use sqlx::{Connection, PgConnection, Row};

use crate::{port_accepts, process_exists};

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[tokio::test]
async fn a_test_database_is_empty_and_usable_with_sqlx() {
    let db = postgres::database();
    let mut conn = PgConnection::connect(db.url()).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0);
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(name, db.name());
}

#[test]
fn parallel_tests_get_isolated_databases() {
    let first = postgres::database();
    let second = postgres::database();
    assert_ne!(first.name(), second.name());
    assert_eq!(
        first.cluster().port(),
        second.cluster().port(),
        "one cluster per process"
    );

    // Two threads run at the same time: same table name, different rows.
    let barrier = Barrier::new(2);
    thread::scope(|scope| {
        for (db, marker) in [(&first, "first"), (&second, "second")] {
            let barrier = &barrier;
            scope.spawn(move || {
                block_on(async {
                    let mut conn = PgConnection::connect(db.url()).await.unwrap();
                    sqlx::query("CREATE TABLE marker (who text NOT NULL)")
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    sqlx::query("INSERT INTO marker VALUES ($1)")
                        .bind(marker)
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    barrier.wait();
                    let rows = sqlx::query("SELECT who FROM marker")
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    let seen: Vec<String> = rows.iter().map(|r| r.get("who")).collect();
                    assert_eq!(seen, vec![marker.to_owned()]);
                })
            });
        }
    });
}

#[test]
fn a_database_is_dropped_with_its_handle_even_with_open_connections() {
    let db = postgres::database();
    let cluster = Arc::clone(db.cluster());
    let name = db.name().to_owned();
    let conn = block_on(PgConnection::connect(db.url())).unwrap();
    assert!(cluster.database_exists(&name).unwrap());
    drop(db);
    assert!(!cluster.database_exists(&name).unwrap());
    drop(conn);
}

#[test]
fn a_database_is_dropped_when_the_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = panic::catch_unwind(move || {
        let db = postgres::database();
        tx.send((Arc::clone(db.cluster()), db.name().to_owned()))
            .unwrap();
        panic!("a failing test body");
    });
    assert!(outcome.is_err());
    let (cluster, name) = rx.recv().unwrap();
    assert!(
        !cluster.database_exists(&name).unwrap(),
        "{name} outlived the panicking test"
    );
}

#[test]
fn a_private_cluster_stops_and_removes_its_directory_on_drop() {
    let cluster = PgCluster::builder().start();
    let (pid, port) = (cluster.pid(), cluster.port());
    let data_dir = cluster
        .psql("SHOW data_directory")
        .unwrap()
        .trim()
        .to_owned();
    assert!(std::path::Path::new(&data_dir).is_dir());
    drop(cluster);
    assert!(!process_exists(pid), "postgres {pid} still running");
    assert!(!port_accepts(port));
    assert!(
        !std::path::Path::new(&data_dir).exists(),
        "{data_dir} left behind"
    );
}

#[test]
fn a_taken_port_falls_back_to_a_free_one() {
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let cluster = Arc::new(PgCluster::builder().with_port(taken).start());
    assert_ne!(cluster.port(), taken);
    let db = cluster.try_create_database().unwrap();
    assert!(cluster.database_exists(db.name()).unwrap());
}

#[test]
fn a_start_up_failure_reports_the_servers_own_log() {
    let err = PgCluster::builder()
        .with_setting("shared_buffers", "plenty")
        .try_start()
        .unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("invalid value for parameter \"shared_buffers\""),
        "{message}"
    );
}

#[test]
fn a_crashed_server_fails_the_test_with_its_log() {
    let cluster = Arc::new(PgCluster::builder().start());
    assert!(cluster.ensure_alive().is_ok());
    kill(Pid::from_raw(cluster.pid() as i32), Signal::SIGKILL).unwrap();
    let err = cluster.try_create_database().unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("postgres"), "{message}");
    assert!(message.contains("ready to accept connections"), "{message}");
}
