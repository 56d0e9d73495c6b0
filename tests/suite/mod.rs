mod agent_loaders;
mod cli;
mod engine;
mod props;
mod qa_loaders;
mod replay_validity;
mod tokens;
