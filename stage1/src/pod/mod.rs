//! The pod as a whole: its PID 1 and namespaces, and the run loop that supervises its apps.

pub mod sandbox;
pub mod supervisor;
