//! Domain types parsed at the edge, why a field was refused, and the URL pieces
//! made of them.

pub mod assistant;
pub mod emergency;
pub mod field;
pub mod phone;
pub mod provider;
pub mod url;
