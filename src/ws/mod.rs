//! WebSocket adapters: each socket's frames become a stream of decoded input that
//! drives an actor, and the actor's outbox is written back by one writer task.

pub mod agent;
pub mod writer;
