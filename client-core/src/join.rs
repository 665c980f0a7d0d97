//! Running futures side by side without a runtime.

use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::Poll;

/// Runs every future concurrently on the caller's task (each is polled whenever the caller
/// is) and returns their outputs in the given order once all are done.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut running: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in running.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use core::task::Context;

    #[test]
    fn every_output_comes_back_in_order() {
        let futures = (0..5).map(|i| async move { i * 10 }).collect();
        let mut all = core::pin::pin!(join_all(futures));
        let mut cx = Context::from_waker(core::task::Waker::noop());
        match all.as_mut().poll(&mut cx) {
            Poll::Ready(out) => assert_eq!(out, vec![0, 10, 20, 30, 40]),
            Poll::Pending => panic!("ready futures finish at once"),
        }
    }
}
