//! What a visitor or an auditor may ask for: a visitor's export and erasure (`visitors`), and
//! the audit log of admin actions and exports (`audit`); and identifiers that are personal data
//! stored as keyed hashes (`pseudonym`).

pub mod audit;
pub mod pseudonym;
pub mod visitors;
