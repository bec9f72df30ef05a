// A descriptor but no entry point.
#include <callback/plugin.hpp>

extern "C" CALLBACK_EXPORT __attribute__((used, section(CALLBACK_PLUGIN_SECTION)))
const callback_plugin_descriptor callback_plugin_descriptor_v1 = {
    CALLBACK_PLUGIN_MAGIC, CALLBACK_PLUGIN_ABI_VERSION, sizeof(callback_plugin_descriptor), "trigger",
    "callback.test.missing_symbol", "1.0.0", CALLBACK_BUILD_FINGERPRINT};
