"""The HTTP API (`catalogflow api`): the read model and the command topics behind roles."""
