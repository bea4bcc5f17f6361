#![no_main]
// The harness is shared with the stable smoke run (lab/fuzzing/tests/smoke.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| lvslab_fuzzing::frame_path_v6(data));
