//! AI voice agents: assistants, the realtime relay that puts one on a call, the
//! cost of a call and the post-call summary.

pub mod assistant;
pub mod cost;
pub mod hooks;
pub mod objective_check;
pub mod outbound;
pub mod relay;
pub mod resumed;
pub mod summary;
pub mod task_outcome;
