"""sona-web: an online-learning engine for LLM routers and chat apps, in numpy."""
