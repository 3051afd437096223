"""The registry edge: HTTP client, authentication and credentials."""
