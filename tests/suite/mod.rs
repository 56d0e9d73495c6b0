mod agent_loaders;
mod engine;
mod props;
mod qa_loaders;
