//! `mailbox-server`: the Hush mailbox on one machine.
//!
//! The API semantics come from the `mailbox` crate; this binary adapts axum requests to it,
//! stores message bodies in append-only segment files (see [`store::segment`]) indexed by an
//! embedded redb database (see [`store`]), purges expired messages in
//! the background, pushes stored blobs to subscription WebSockets (see [`subscribe`]),
//! optionally serves the static site, and shuts down gracefully on SIGTERM.
//! It logs counts and error classes only: never addresses, bodies, keys, IPs or user agents.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod disk;
mod http;
mod serve;
mod store;
mod subscribe;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mailbox::limits::{DEFAULT_PING_INTERVAL, DEFAULT_WATCH_SET_TIMEOUT, SubscriptionLimits};

use crate::store::{DiskStore, StoreConfig};
use crate::subscribe::{HostMailbox, Publishing, Subscriptions};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "mailbox-server",
    about = "Hush mailbox: stores opaque blobs by address."
)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Folder of the embedded store (created if missing).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Message lifetime in seconds.
    #[arg(long, default_value_t = mailbox::DEFAULT_TTL_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    ttl: u64,
    /// Largest message body in bytes (1 to 16 MiB).
    #[arg(long, default_value_t = mailbox::DEFAULT_MAX_BODY as u64,
          value_parser = clap::value_parser!(u64).range(1..=16 << 20))]
    max_body: u64,
    /// Most message bytes stored at once; PUTs beyond it get 507.
    #[arg(long, default_value_t = 8 << 30)]
    quota: u64,
    /// Page cache of the store's index in MiB: bounds resident memory as the store grows,
    /// and the pages a checkpoint may have to write at once (message bodies and index pages
    /// past it are read through the OS cache).
    #[arg(long, default_value_t = 32)]
    cache_mb: usize,
    /// Under sustained writes, commit the index durably at the latest this long (seconds)
    /// after the oldest write it does not hold durably yet. Each
    /// such checkpoint stalls writes for a few tens of ms (measured here: PUT p99 ~6 ms with
    /// one every 5 s, ~4.5 ms with none), and a restart after a crash re-applies the segments
    /// written since the last one (at most this long of writes). Writes that pause for a
    /// second are checkpointed regardless.
    #[arg(long, default_value_t = 30.0)]
    checkpoint_secs: f64,
    /// MiB of the data folder's disk to leave free: PUTs that would go below it get 507
    /// (disk full) until space returns, and segments are pre-filled only above it.
    /// Default: an eighth of the disk, at most 64 MiB.
    #[arg(long)]
    disk_reserve_mb: Option<u64>,
    /// Also serve the static site from this folder.
    #[arg(long)]
    www: Option<PathBuf>,
    /// Seconds a client may take to send a complete request head (from connecting, or from
    /// the end of the previous response on a kept-alive connection); then it is closed.
    #[arg(long, default_value_t = mailbox::limits::DEFAULT_HEADER_READ_TIMEOUT.as_secs_f64())]
    header_timeout_secs: f64,
    /// Seconds a client may take to send a whole request body; then it gets 408.
    #[arg(long, default_value_t = mailbox::limits::DEFAULT_BODY_READ_TIMEOUT.as_secs_f64())]
    body_timeout_secs: f64,
    /// Seconds a connection may stay open with no request being handled and no byte moving
    /// either way (idle keep-alive, or a client that stopped reading its response).
    #[arg(long, default_value_t = mailbox::limits::DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    idle_timeout_secs: f64,
    /// Most connections open at once (lowered to half the open-file limit if that is
    /// smaller). At the cap the oldest connection with no request in progress is closed to
    /// make room.
    #[arg(long, default_value_t = mailbox::limits::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: usize,
    /// Most bytes of request line and headers (1 KiB to 64 KiB); longer heads get 431 (414
    /// if the request line alone is that long).
    #[arg(long, default_value_t = mailbox::limits::DEFAULT_MAX_HEADER_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=65_536))]
    max_header_bytes: usize,
    /// Most subscription WebSockets (`GET /v1/subscribe`) open at once (lowered to what the
    /// open-file limit leaves after the HTTP connections and the store). One more is accepted
    /// and closed at once with 1013 (too many subscriptions).
    #[arg(long, default_value_t = mailbox::limits::DEFAULT_MAX_SUBSCRIPTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    max_subscriptions: usize,
    /// Seconds a new subscription may take to send its first watch set; then it is closed
    /// with 1008 (no watch set).
    #[arg(long, default_value_t = mailbox::limits::DEFAULT_WATCH_SET_TIMEOUT.as_secs_f64())]
    watch_set_timeout_secs: f64,
    /// Seconds without a message or pong from a subscriber before it is pinged; one that
    /// stays silent as long again is dropped.
    #[arg(long, default_value_t = mailbox::limits::DEFAULT_PING_INTERVAL.as_secs_f64())]
    ping_interval_secs: f64,
}

/// A flag's seconds as a duration (the default if negative, NaN or too large).
fn seconds(value: f64, default: Duration) -> Duration {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(default)
}

/// How often counts are logged (only when they changed).
const STATS_EVERY: Duration = Duration::from_secs(60);

/// Longest wait at shutdown for subscriptions to finish their close (going away takes at most
/// two [`subscribe::connection::CLOSE_GRACE`]).
const SUBSCRIPTIONS_GRACE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ttl = Duration::from_secs(args.ttl);
    std::fs::create_dir_all(&args.data)?;
    let reserve_bytes = args
        .disk_reserve_mb
        .map_or_else(|| disk::default_reserve(&args.data), |mb| mb << 20);
    let (store, writer) = DiskStore::open(
        &args.data,
        StoreConfig {
            ttl,
            quota_bytes: args.quota,
            cache_bytes: args.cache_mb.saturating_mul(1 << 20),
            checkpoint_every: Duration::try_from_secs_f64(args.checkpoint_secs)
                .unwrap_or(Duration::from_secs(30)),
            reserve_bytes,
            free_space: disk::statvfs_free(),
            max_body: args.max_body,
        },
    )?;
    let (max_connections, open_files) = serve::fit_connection_cap(args.max_connections);
    let subscription_limits = SubscriptionLimits {
        max_subscriptions: serve::fit_subscription_cap(
            args.max_subscriptions,
            max_connections,
            open_files,
        ),
        watch_set_timeout: seconds(args.watch_set_timeout_secs, DEFAULT_WATCH_SET_TIMEOUT),
        ping_interval: seconds(args.ping_interval_secs, DEFAULT_PING_INTERVAL),
        ..SubscriptionLimits::default()
    };
    let subscriptions = Subscriptions::new(subscription_limits);
    let mailbox = Arc::new(mailbox::Mailbox::new(
        Publishing::new(store, Arc::clone(&subscriptions.hub)),
        mailbox::Config {
            max_body: usize::try_from(args.max_body).unwrap_or(mailbox::DEFAULT_MAX_BODY),
        },
    ));
    let limits = mailbox::limits::ConnectionLimits {
        header_read_timeout: seconds(
            args.header_timeout_secs,
            mailbox::limits::DEFAULT_HEADER_READ_TIMEOUT,
        ),
        body_read_timeout: seconds(
            args.body_timeout_secs,
            mailbox::limits::DEFAULT_BODY_READ_TIMEOUT,
        ),
        idle_timeout: seconds(
            args.idle_timeout_secs,
            mailbox::limits::DEFAULT_IDLE_TIMEOUT,
        ),
        max_connections,
        max_header_bytes: args.max_header_bytes,
    };
    let app = http::router(
        http::Api {
            mailbox: Arc::clone(&mailbox),
            body_read_timeout: limits.body_read_timeout,
            subscriptions: subscriptions.clone(),
        },
        args.www.as_deref(),
    );

    let purge = tokio::spawn(purge_loop(Arc::clone(&mailbox), ttl));
    let checkpoint = tokio::spawn(checkpoint_loop(Arc::clone(&mailbox)));
    let stats = tokio::spawn(stats_loop(
        Arc::clone(&mailbox),
        Arc::clone(&subscriptions.hub),
    ));

    eprintln!(
        "mailbox-server: limits: connections {} (open files {}), header {:?}, body {:?}, \
         idle {:?}, header bytes {}, subscriptions {} (watch set {:?}, ping {:?}, send \
         budget {} bytes)",
        limits.max_connections,
        open_files.map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        limits.header_read_timeout,
        limits.body_read_timeout,
        limits.idle_timeout,
        limits.max_header_bytes,
        subscription_limits.max_subscriptions,
        subscription_limits.watch_set_timeout,
        subscription_limits.ping_interval,
        subscription_limits.send_budget,
    );
    let listener = serve::listen(args.listen)?;
    println!(
        "mailbox-server listening on http://{}",
        listener.local_addr()?
    );
    let hub = Arc::clone(&subscriptions.hub);
    let shutdown = async move {
        shutdown_signal().await;
        // Subscriptions close with 1001 (going away) while HTTP requests finish.
        hub.shut_down();
    };
    serve::serve(listener, app, limits, shutdown).await;
    subscriptions.hub.closed(SUBSCRIPTIONS_GRACE).await;

    for task in [purge, checkpoint, stats] {
        task.abort();
        let _ = task.await;
    }
    eprintln!("mailbox-server: stopping; {}", mailbox.counters());
    eprintln!("mailbox-server: {}", subscriptions.hub.summary());
    drop(mailbox);
    tokio::task::spawn_blocking(move || writer.shutdown()).await?;
    Ok(())
}

/// Deletes expired messages every `ttl / 2` (between 1 s and 60 s). Reads already hide
/// expired messages; this reclaims their space.
async fn purge_loop(mailbox: Arc<HostMailbox>, ttl: Duration) {
    let every = (ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = mailbox.store().inner().purge_expired().await {
            eprintln!("mailbox-server: purge failed: {err}");
        }
    }
}

/// Asks the writer every second to make pending index commits durable once writes paused
/// (see `store`); under load the writer checkpoints on its own.
async fn checkpoint_loop(mailbox: Arc<HostMailbox>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if mailbox.store().inner().checkpoint().await.is_err() {
            return;
        }
    }
}

/// Logs the outcome counters, and the subscription counts, when they changed.
async fn stats_loop(mailbox: Arc<HostMailbox>, hub: Arc<subscribe::hub::Hub>) {
    let mut tick = tokio::time::interval(STATS_EVERY);
    tick.tick().await;
    let (mut last, mut last_subscriptions) = (0, 0);
    loop {
        tick.tick().await;
        let total = mailbox.counters().total();
        if total != last {
            last = total;
            eprintln!("mailbox-server: {}", mailbox.counters());
        }
        let activity = hub.activity();
        if activity != last_subscriptions {
            last_subscriptions = activity;
            eprintln!("mailbox-server: {}", hub.summary());
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
