//! The `slup` command (issue 5; under construction).
fn main() {}
