// A perfectly good shared library that is not a callback plugin.
extern "C" __attribute__((visibility("default"))) int callback_test_answer() { return 42; }
