"""Pure judgement of proposed actions: rules, provenance and information-flow labels, the LLM
voter, decider policies."""
