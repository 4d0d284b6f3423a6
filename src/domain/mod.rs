//! Domain types parsed at the edge.

pub mod phone;
pub mod provider;
