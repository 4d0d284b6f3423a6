mod db;
mod helpers;
mod inbound;
mod softphone;
mod store;
mod twilio;
mod voicemail;
