//! Domain types parsed at the edge.

pub mod assistant;
pub mod phone;
pub mod provider;
