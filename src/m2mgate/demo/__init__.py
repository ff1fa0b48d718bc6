"""`m2mgate demo`: gateway + embedded issuer + echo upstream in one process."""
