"""Pure judgement of proposed actions: rules, provenance and information-flow labels, the LLM
voter. (Decider policies are part of the bus fold: ``logact.agent.core.policy``.)"""
