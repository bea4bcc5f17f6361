//! Helpers shared by the tests of `lvslab commands`.
pub mod hand_lab;
