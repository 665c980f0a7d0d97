//! One subscription WebSocket, from its upgrade to its close.
//!
//! The reader side takes client messages one at a time (`mailbox::subscribe::
//! read_client_message`), registers each watch set and queues its snapshot, and carries out
//! each delete message (`mailbox::subscribe::delete`: each delete durable as an HTTP
//! `DELETE`, nothing sent back) before it reads the next message; the writer side drains
//! the connection's [`Outbox`] into the socket. Closing: the close frame with the
//! code and reason of `mailbox::subscribe::Close`, then the socket's write side is shut and
//! what the client still sends is read and dropped until it closes too (bounded by
//! [`CLOSE_GRACE`]), so the close frame is not lost to a reset. A reader closed for being too
//! slow has its queue dropped at once (its memory is freed) but gets one ping interval to
//! take what was already in flight and the close frame, so that a reader that only paused
//! learns why; then it is dropped.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::body::Bytes;
use hyper_tungstenite::HyperWebsocketStream;
use hyper_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use hyper_tungstenite::tungstenite::protocol::CloseFrame;
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::{Message, Utf8Bytes};
use mailbox::limits::SubscriptionLimits;
use mailbox::subscribe::{ClientMessage, Close, FromClient, delete, read_client_message, snapshot};
use mailbox::{Mailbox, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::hub::{Hub, Out, Outbox, Ticket};

/// Longest wait for a close frame to go out, and then for the client to close its side.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

type Sink = SplitSink<HyperWebsocketStream, Message>;
type Stream = SplitStream<HyperWebsocketStream>;

/// How a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The mailbox closes it with this code.
    Close(Close),
    /// The client closed it, or the connection failed.
    Client,
    /// No answer to a ping within another ping interval: dropped.
    Unresponsive,
}

/// Serves one upgraded connection: under the hub's cap a subscription, at the cap closed at
/// once with `1013 too many subscriptions`.
pub async fn run<S: Store>(
    ws: HyperWebsocketStream,
    hub: Arc<Hub>,
    mailbox: Arc<Mailbox<S>>,
    limits: SubscriptionLimits,
) {
    let (mut sink, mut stream) = ws.split();
    let Some(ticket) = hub.open() else {
        hub.count_close(Close::TooManySubscriptions);
        close_with(sink, stream, Close::TooManySubscriptions, CLOSE_GRACE).await;
        return;
    };
    let end = serve(&mut sink, &mut stream, &ticket, &hub, &mailbox, &limits).await;
    match end {
        End::Close(close) => {
            hub.count_close(close);
            let grace = if close == Close::ReaderTooSlow {
                limits.ping_interval
            } else {
                CLOSE_GRACE
            };
            close_with(sink, stream, close, grace).await;
        }
        End::Client => {
            hub.stats
                .closed_by_client
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Send tungstenite's reply to the client's close, if it is still due.
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
        }
        End::Unresponsive => {
            hub.stats
                .unresponsive
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    // The ticket (the place under the cap) goes with the socket.
    drop(ticket);
}

/// The subscription's life until it ends: client messages in, outbox out, keep-alive, the
/// watch-set deadline and shutdown.
async fn serve<S: Store>(
    sink: &mut Sink,
    stream: &mut Stream,
    ticket: &Ticket,
    hub: &Hub,
    mailbox: &Mailbox<S>,
    limits: &SubscriptionLimits,
) -> End {
    let outbox = &ticket.outbox;
    let mut shutdown = hub.shutting_down();
    if *shutdown.borrow_and_update() {
        return End::Close(Close::GoingAway);
    }
    let opened = Instant::now();
    let mut watching = false;
    let mut last_heard = opened;
    let mut pinged: Option<Instant> = None;
    let writer = pump(sink, outbox);
    tokio::pin!(writer);
    loop {
        let deadline = match (watching, pinged) {
            (false, _) => opened + limits.watch_set_timeout,
            (true, None) => last_heard + limits.ping_interval,
            (true, Some(at)) => at + limits.ping_interval,
        };
        tokio::select! {
            biased;
            _ = shutdown.changed() => return End::Close(Close::GoingAway),
            () = outbox.close.notified() => {
                if let Some(close) = outbox.closing() {
                    return End::Close(close);
                }
            }
            _ = &mut writer => return End::Client,
            incoming = stream.next() => {
                last_heard = Instant::now();
                pinged = None;
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                        return End::Close(Close::MessageTooBig);
                    }
                    // A text message that is not UTF-8 is still a text message.
                    Some(Err(WsError::Utf8(_))) => return End::Close(Close::BinaryOnly),
                    None | Some(Err(_)) => return End::Client,
                };
                let client = match &message {
                    Message::Binary(bytes) => ClientMessage::Binary(bytes),
                    Message::Text(text) => ClientMessage::Text(text.len()),
                    Message::Close(_) => return End::Client,
                    // Pings are answered by tungstenite; pongs only show the client is there.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                };
                let watch = match read_client_message(client) {
                    Ok(FromClient::Watch(watch)) => watch,
                    Ok(FromClient::Delete(deletes)) => {
                        // Nothing is sent back, and a delete is no watch set: the watch-set
                        // deadline still runs.
                        match delete(mailbox.store(), &deletes).await {
                            Ok(handled) => {
                                hub.stats.deleted.fetch_add(
                                    handled as u64,
                                    std::sync::atomic::Ordering::Relaxed,
                                );
                                continue;
                            }
                            Err(close) => return End::Close(close),
                        }
                    }
                    Err(close) => return End::Close(close),
                };
                // Registered before the snapshot is read: nothing stored from now on is missed.
                ticket.watch(&watch);
                watching = true;
                match snapshot(mailbox.store(), &watch).await {
                    Ok(frame) => {
                        outbox.snapshot(Bytes::from(frame));
                        hub.stats
                            .snapshots
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(close) => return End::Close(close),
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if !watching {
                    return End::Close(Close::NoWatchSet);
                }
                if pinged.is_some() {
                    return End::Unresponsive;
                }
                outbox.ping();
                pinged = Some(Instant::now());
            }
        }
    }
}

/// Sends what the outbox holds, in order, for as long as the connection lives; returns only
/// when the socket fails.
async fn pump(sink: &mut Sink, outbox: &Outbox) -> WsError {
    loop {
        let sent = match outbox.next() {
            Some(Out::Frame(frame)) => {
                let len = frame.len();
                let sent = sink.send(Message::Binary(frame)).await;
                outbox.sent(len);
                sent
            }
            Some(Out::Ping) => sink.send(Message::Ping(Bytes::new())).await,
            None => {
                outbox.ready.notified().await;
                Ok(())
            }
        };
        if let Err(err) = sent {
            return err;
        }
    }
}

/// Closes with `close`: the close frame (sent within `grace`), then the write side shut, then
/// what the client still sends read and dropped until it closes its side (within
/// [`CLOSE_GRACE`]).
async fn close_with(mut sink: Sink, stream: Stream, close: Close, grace: Duration) {
    let frame = CloseFrame {
        code: CloseCode::from(close.code()),
        reason: Utf8Bytes::from_static(close.reason()),
    };
    let sent = tokio::time::timeout(grace, sink.send(Message::Close(Some(frame)))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let Ok(ws) = stream.reunite(sink) else {
        return;
    };
    let mut io = ws.into_inner();
    let drain = async {
        io.shutdown().await?;
        let mut scratch = [0u8; 4096];
        while io.read(&mut scratch).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
}
