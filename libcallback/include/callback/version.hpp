#pragma once
// The one version of callback. CMake reads these three lines; keep their form.
#define CALLBACK_VERSION_MAJOR 0
#define CALLBACK_VERSION_MINOR 1
#define CALLBACK_VERSION_PATCH 0

// The plugin ABI: bump whenever a public interface, value type layout or the plugin
// descriptor changes. The loader refuses plugins built against another ABI.
#define CALLBACK_PLUGIN_ABI_VERSION 1

#define CALLBACK_STRINGIFY_(x) #x
#define CALLBACK_STRINGIFY(x) CALLBACK_STRINGIFY_(x)
#define CALLBACK_VERSION_STRING                                                          \
  CALLBACK_STRINGIFY(CALLBACK_VERSION_MAJOR)                                             \
  "." CALLBACK_STRINGIFY(CALLBACK_VERSION_MINOR) "." CALLBACK_STRINGIFY(CALLBACK_VERSION_PATCH)

namespace callback {
// The version of the library actually loaded (may differ from the header an app built with).
[[gnu::visibility("default")]] const char* version() noexcept;
}  // namespace callback
