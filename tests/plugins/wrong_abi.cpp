// A plugin that claims plugin ABI 999: the loader must refuse it from the file alone.
#include <callback/plugin.hpp>

extern "C" CALLBACK_EXPORT __attribute__((used, section(CALLBACK_PLUGIN_SECTION)))
const callback_plugin_descriptor callback_plugin_descriptor_v1 = {
    CALLBACK_PLUGIN_MAGIC, 999, sizeof(callback_plugin_descriptor), "trigger", "callback.test.wrong_abi", "1.0.0",
    CALLBACK_BUILD_FINGERPRINT};

// If the loader ever ran this, the test would see the file's marker.
extern "C" CALLBACK_EXPORT const callback::PluginFactory* callback_plugin_factory_v1(char*, std::size_t) noexcept {
  __builtin_trap();
}
