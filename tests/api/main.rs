mod db;
mod helpers;
mod store;
