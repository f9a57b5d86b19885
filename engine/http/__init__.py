"""The JSON API: request plumbing, routes, OpenAPI."""
