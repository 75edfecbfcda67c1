//! `slup-server`: the reference license service (issue 5; under construction).
