#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lorafuse::dev::fuzz::peft(data);
});
