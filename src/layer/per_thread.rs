//! A shared value handed to every request without a write that all requests share.
//!
//! A response future that needs the layer's configuration after the inner service
//! answered holds a reference to it. Cloning one `Arc` per request would make every
//! request, on every core, write that `Arc`'s reference count: one cache line bouncing
//! between cores. [`PerThread`] hands out instead a clone of the calling thread's own
//! handle (an `Arc` of its own, on a cache line of its own, that points to the shared
//! value), so requests on different cores write different lines.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use thread_local::ThreadLocal;

/// A shared value and every thread's handle to it.
pub(crate) struct PerThread<T: Send + Sync> {
    shared: Arc<T>,
    handles: ThreadLocal<Handle<T>>,
}

/// A thread's handle: a reference to the shared value, its reference count written
/// only by the requests of its thread (and by those that finish on another).
pub(crate) struct Handle<T>(Arc<Padded<Arc<T>>>);

/// Keeps a handle's reference count off the cache lines of other threads' handles (128
/// bytes: adjacent-line prefetching pairs lines).
#[repr(align(128))]
struct Padded<T>(T);

impl<T: Send + Sync> PerThread<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            shared: Arc::new(value),
            handles: ThreadLocal::new(),
        }
    }

    /// The calling thread's handle.
    #[inline]
    pub(crate) fn handle(&self) -> Handle<T> {
        let handle = self
            .handles
            .get_or(|| Handle(Arc::new(Padded(self.shared.clone()))));
        Handle(handle.0.clone())
    }

    /// The value, to change while nobody else holds it (a layer being configured).
    pub(crate) fn make_mut(&mut self) -> &mut T
    where
        T: Clone,
    {
        self.handles.clear();
        Arc::make_mut(&mut self.shared)
    }
}

impl<T: Send + Sync> Deref for PerThread<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.shared
    }
}

impl<T> Deref for Handle<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &(self.0).0
    }
}

impl<T: Send + Sync> Clone for PerThread<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            handles: ThreadLocal::new(),
        }
    }
}

impl<T: Send + Sync + fmt::Debug> fmt::Debug for PerThread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_gets_the_same_handle_and_others_their_own() {
        let shared = PerThread::new(7);
        let (a, b) = (shared.handle(), shared.handle());
        assert!(Arc::ptr_eq(&a.0, &b.0));
        let other = std::thread::scope(|scope| scope.spawn(|| shared.handle()).join().unwrap());
        assert!(!Arc::ptr_eq(&a.0, &other.0));
        assert_eq!((*a, *other), (7, 7));
    }

    #[test]
    fn a_change_reaches_the_handles_made_after_it() {
        let mut shared = PerThread::new(1);
        let before = shared.handle();
        *shared.make_mut() = 2;
        assert_eq!((*before, *shared.handle(), *shared), (1, 2, 2));
    }
}
