"""The HTTP surface: the app factory, OpenAI and admin routes, errors, responses."""
