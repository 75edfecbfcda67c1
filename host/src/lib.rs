//! `slup-host`: the host device runtime (issue 5; under construction).
