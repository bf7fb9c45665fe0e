//! Redis-backed cache and dedupe store.
