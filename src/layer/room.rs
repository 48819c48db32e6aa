//! Inserting into a request's extensions without the map growing afterwards.
//!
//! `http::Extensions` creates its map on the first insert, with room for three entries.
//! Around a whole axum `Router`, the layer's insert comes first and axum then adds three
//! more (`OriginalUri`, `UrlParams`, `MatchedPath`): the fourth grew the map on every
//! request (a second allocation, a rehash and a free, about 300 instructions). A request
//! that arrives with no extensions starts instead from a clone of an empty map that
//! already has room for seven (cloning a map keeps the size of its table).

use http::Extensions;

/// An empty extensions map with room for seven entries, to start requests from.
#[derive(Clone, Debug)]
pub(crate) struct Room(Extensions);

impl Room {
    pub(crate) fn new() -> Self {
        #[derive(Clone)]
        struct Slot<const N: u8>;
        let mut extensions = Extensions::new();
        // The fourth insert grows the table to eight buckets; clearing keeps them.
        extensions.insert(Slot::<0>);
        extensions.insert(Slot::<1>);
        extensions.insert(Slot::<2>);
        extensions.insert(Slot::<3>);
        extensions.clear();
        Self(extensions)
    }

    /// Inserts `value` into `extensions`, into a map with room when there is none yet.
    #[inline]
    pub(crate) fn insert<T>(&self, extensions: &mut Extensions, value: T)
    where
        T: Clone + Send + Sync + 'static,
    {
        if extensions.is_empty() {
            self.furnish(extensions);
        }
        extensions.insert(value);
    }

    /// Out of line, so that the caller's hot path stays as small as it was where
    /// requests arrive with extensions (inside a `Router`, where axum inserted its own).
    #[inline(never)]
    fn furnish(&self, extensions: &mut Extensions) {
        *extensions = self.0.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_keeps_what_it_arrived_with_and_the_room_stays_empty() {
        let room = Room::new();
        let mut arrived = Extensions::new();
        arrived.insert(7u8);
        room.insert(&mut arrived, "principal");
        assert_eq!(arrived.get::<u8>(), Some(&7));
        assert_eq!(arrived.get::<&str>(), Some(&"principal"));
        let mut bare = Extensions::new();
        room.insert(&mut bare, 1u16);
        assert_eq!((bare.len(), bare.get::<u16>()), (1, Some(&1)));
        assert!(room.0.is_empty());
    }
}
