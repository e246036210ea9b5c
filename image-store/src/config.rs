//! Registry-related configuration: auth.d, dockerAuth, docker config.json, certs.d, registries.d.
