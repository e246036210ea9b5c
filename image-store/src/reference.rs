//! Image references as users type them.
