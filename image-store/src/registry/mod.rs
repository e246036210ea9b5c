//! OCI distribution client (oci-client): auth, TLS, mirrors, retries.
