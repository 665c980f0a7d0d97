//! `mailbox-server`: the Hush mailbox on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use clap::Parser;
use tower_http::services::ServeDir;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(name = "mailbox-server", about = "Hush mailbox: stores opaque blobs by address.")]
struct Args {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Also serve the static site from this folder.
    #[arg(long)]
    www: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut app = Router::new().route(
        "/v1/health",
        get(|| async {
            (
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                mailbox::HEALTH_BODY,
            )
        }),
    );
    if let Some(www) = &args.www {
        app = app.fallback_service(ServeDir::new(www));
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("mailbox-server listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
