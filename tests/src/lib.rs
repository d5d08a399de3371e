//! Cross-backend integration suites.
