// A plugin built "with other options": same ABI number, different build fingerprint.
#include <callback/plugin.hpp>

extern "C" CALLBACK_EXPORT __attribute__((used, section(CALLBACK_PLUGIN_SECTION)))
const callback_plugin_descriptor callback_plugin_descriptor_v1 = {
    CALLBACK_PLUGIN_MAGIC, CALLBACK_PLUGIN_ABI_VERSION, sizeof(callback_plugin_descriptor), "trigger",
    "callback.test.wrong_fingerprint", "1.0.0", "abi1;gcc99;cxx11abi0;boost107400;asan;stl"};

extern "C" CALLBACK_EXPORT const callback::PluginFactory* callback_plugin_factory_v1(char*, std::size_t) noexcept {
  __builtin_trap();
}
