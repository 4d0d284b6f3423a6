//! Domain types parsed at the edge, and the URL pieces made of them.
//!
//! - [`phone`]: E.164 phone numbers; [`provider`]: number providers;
//!   [`assistant`]: an assistant's tools as stored; [`url`]: URL pieces;
//!   [`user`]: a user's e-mail, time zone, plan name and status;
//!   [`field`]: why a field was refused; [`emergency`]: emergency numbers;
//!   [`safety`]: how serious a safety finding is; [`text_template`]: the
//!   missed-call text's template.

pub mod assistant;
pub mod emergency;
pub mod field;
pub mod phone;
pub mod provider;
pub mod recording;
pub mod safety;
pub mod text_template;
pub mod url;
pub mod user;
