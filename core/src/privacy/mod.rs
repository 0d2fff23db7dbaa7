//! What a visitor or an auditor may ask for: a visitor's export and erasure (`visitors`), and
//! the audit log of admin actions and exports (`audit`).

pub mod audit;
pub mod visitors;
