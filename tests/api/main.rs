mod db;
mod helpers;
mod inbound;
mod store;
mod twilio;
mod voicemail;
