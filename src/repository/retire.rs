//! Letting go of a model version: the heavy part of a loaded model (its worker threads and ONNX Runtime
//! sessions) is handed, when the last request lets go of the model, to whoever unloads it, which drops it off
//! the async runtime. Unloading waits on that hand-over, not by polling a reference count.

use std::ops::Deref;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// A value that, when its owner is dropped, goes to a registered waiter instead of being dropped in place.
pub struct Retiring<T> {
    /// `Some` until dropped.
    value: Option<T>,
    waiter: Mutex<Option<oneshot::Sender<T>>>,
}

impl<T> Retiring<T> {
    pub fn new(value: T) -> Retiring<T> {
        Retiring {
            value: Some(value),
            waiter: Mutex::new(None),
        }
    }

    /// Asks for the value once its owner is dropped (the last `Arc` of the model gone). A later call replaces
    /// an earlier waiter.
    pub fn on_release(&self) -> oneshot::Receiver<T> {
        let (sender, receiver) = oneshot::channel();
        *self.waiter.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
        receiver
    }
}

impl<T> Deref for Retiring<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
            .as_ref()
            .expect("the value is present until the owner is dropped")
    }
}

impl<T> Drop for Retiring<T> {
    fn drop(&mut self) {
        let waiter = self
            .waiter
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let (Some(value), Some(waiter)) = (self.value.take(), waiter) {
            // Nobody waits any more (the unload gave up): the value is dropped here.
            drop(waiter.send(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_waiter_gets_the_value_when_the_last_owner_lets_go() {
        let owner = Arc::new(Retiring::new(vec![1, 2, 3]));
        let in_flight = owner.clone();
        let released = owner.on_release();
        drop(owner);
        tokio::task::yield_now().await;
        assert_eq!(in_flight.len(), 3, "still usable while held");
        drop(in_flight);
        assert_eq!(released.await.unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn without_a_waiter_the_value_is_dropped_in_place() {
        let owner = Retiring::new(Arc::new(()));
        let watch = Arc::downgrade(&owner);
        drop(owner);
        assert!(watch.upgrade().is_none());
    }
}
