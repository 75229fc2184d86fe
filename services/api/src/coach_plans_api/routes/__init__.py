"""HTTP routes: parse the request, call the service, return a schema."""
