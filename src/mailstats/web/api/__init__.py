"""The v2 API's endpoints, one module per resource."""
