//! Domain types parsed at the edge, and the URL pieces made of them.

pub mod assistant;
pub mod phone;
pub mod provider;
pub mod url;
