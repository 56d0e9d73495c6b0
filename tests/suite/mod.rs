mod agent_loaders;
