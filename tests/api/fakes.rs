//! Fake peers for the AI-agent tests: the OpenAI Realtime server, the summary
//! LLM APIs, and webhook tools. Each runs an actix-web server on 127.0.0.1:0
//! inside the test's runtime; see each module's doc for its protocol subset and
//! the deterministic numbers it reports.

pub mod llm;
pub mod openai;
pub mod tools;
