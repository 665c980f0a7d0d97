//! A throwaway `mailbox-server` (debug build, temporary data folder, free loopback port) for
//! suites that need a live mailbox; stopped with SIGTERM when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

/// A running mailbox-server.
pub struct Mailbox {
    child: Child,
    url: String,
    data: PathBuf,
}

impl Mailbox {
    /// Starts `target/debug/mailbox-server` and waits for its "listening" line.
    pub fn start(root: &Path) -> Result<Mailbox> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data =
            std::env::temp_dir().join(format!("hush-xtask-mailbox-{}-{port}", std::process::id()));
        let mut child = Command::new(crate::target_dir(root).join("debug/mailbox-server"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting target/debug/mailbox-server")?;
        let stdout = child.stdout.take().context("mailbox-server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on http://") => break,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.kill();
                    bail!("mailbox-server exited before listening");
                }
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Mailbox {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data,
        })
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
