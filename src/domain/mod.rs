//! Domain types parsed at the edge, and the URL pieces made of them.

pub mod phone;
pub mod url;
