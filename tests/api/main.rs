mod db;
mod helpers;
mod inbound;
mod store;
