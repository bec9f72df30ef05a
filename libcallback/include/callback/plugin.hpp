#pragma once
// Plugins: shared libraries (Boost.DLL) that provide stores, billing backends, engines,
// triggers and front ends. A plugin declares itself once, with CALLBACK_PLUGIN:
//
//   class AmiEngineFactory final : public callback::PluginFactory {
//    public:
//     std::string description() const override { return "Asterisk Manager Interface engine"; }
//     std::vector<callback::OptionSpec> options() const override { return {...}; }
//    protected:
//     std::unique_ptr<callback::Component> make(const callback::CreateArgs& args) const override {
//       return std::make_unique<AmiEngine>(args.context, args.options);
//     }
//   };
//   CALLBACK_PLUGIN(engine, "callback.engine.ami", "1.0.0", AmiEngineFactory)
//
// The macro emits two things:
//  * a descriptor (plain C data in its own ELF section, `callback_plugin`) with a magic,
//    the plugin ABI version, kind, canonical name, plugin version and build fingerprint.
//    The loader reads it from the file *before* loading the library, so a plugin built
//    against another ABI or with other build options (compiler, standard library ABI,
//    Boost, sanitizers) is refused before any of its code runs (Linux's .modinfo idea).
//  * an entry point returning the factory. No exception crosses it: a failure becomes an
//    error string; create() converts any exception from the plugin's make() into an Error.
#include <callback/component.hpp>
#include <callback/context.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/options.hpp>
#include <callback/version.hpp>

#include <boost/version.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#define CALLBACK_PLUGIN_MAGIC "CALLBACK-PLUGIN"
#define CALLBACK_PLUGIN_SECTION "callback_plugin"
#define CALLBACK_PLUGIN_DESCRIPTOR_SYMBOL "callback_plugin_descriptor_v1"
#define CALLBACK_PLUGIN_ENTRY_SYMBOL "callback_plugin_factory_v1"

#if defined(__SANITIZE_ADDRESS__)
#define CALLBACK_FP_ASAN "asan"
#else
#define CALLBACK_FP_ASAN "noasan"
#endif
#if defined(_GLIBCXX_DEBUG)
#define CALLBACK_FP_STDDEBUG "stldebug"
#else
#define CALLBACK_FP_STDDEBUG "stl"
#endif
#if defined(__clang__)
#define CALLBACK_FP_COMPILER "clang" CALLBACK_STRINGIFY(__clang_major__)
#else
#define CALLBACK_FP_COMPILER "gcc" CALLBACK_STRINGIFY(__GNUC__)
#endif

// What must match between libcallback and a plugin for C++ objects to cross safely.
#define CALLBACK_BUILD_FINGERPRINT                                                        \
  "abi" CALLBACK_STRINGIFY(CALLBACK_PLUGIN_ABI_VERSION) ";" CALLBACK_FP_COMPILER          \
  ";cxx11abi" CALLBACK_STRINGIFY(_GLIBCXX_USE_CXX11_ABI) ";boost" CALLBACK_STRINGIFY(BOOST_VERSION) \
  ";" CALLBACK_FP_ASAN ";" CALLBACK_FP_STDDEBUG

extern "C" {
// Fixed-size fields only: no pointers, so the loader can read it straight from the file.
struct callback_plugin_descriptor {
  char magic[16];        // CALLBACK_PLUGIN_MAGIC
  std::uint32_t abi_version;
  std::uint32_t descriptor_size;
  char kind[16];         // "store", "billing", "engine", "trigger", "frontend"
  char name[64];         // "callback.engine.ami"
  char version[32];      // the plugin's own version
  char fingerprint[96];  // CALLBACK_BUILD_FINGERPRINT
};
}

namespace callback {

class Store;
class HttpRoutes;
class Engine;
struct NumberingPlan;

enum class PluginKind { store, billing, engine, trigger, frontend };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(PluginKind kind) noexcept;
[[nodiscard]] CALLBACK_EXPORT std::optional<PluginKind> plugin_kind_from_string(std::string_view s) noexcept;

// What a factory gets to build one instance.
struct CreateArgs {
  Context& context;
  const Options& options;    // validated against the factory's options()
  std::string instance_name;  // "ast1"; the canonical plugin name when not configured
  Store* store = nullptr;     // the service's store (accounts by id, number, e-mail), for components that need one
  const NumberingPlan* plan = nullptr;  // the service's, for make_request (triggers, front ends)
  HttpRoutes* routes = nullptr;  // callbackd's HTTP routes (triggers, front ends); nullptr: no HTTP server here
  // The service's engine, for triggers that take inbound calls (route_inbound, reject):
  // call it on the Context's io_context only.
  Engine* engine = nullptr;
};

class CALLBACK_EXPORT PluginFactory {
 public:
  virtual ~PluginFactory();
  [[nodiscard]] virtual std::string description() const = 0;
  [[nodiscard]] virtual std::vector<OptionSpec> options() const = 0;

  // Calls make(); any exception it throws becomes an Error ("factory_threw").
  [[nodiscard]] Result<std::unique_ptr<Component>> create(const CreateArgs& args) const noexcept;

 protected:
  [[nodiscard]] virtual std::unique_ptr<Component> make(const CreateArgs& args) const = 0;
};

using PluginEntry = const PluginFactory* (*)(char* error, std::size_t error_size);

}  // namespace callback

#define CALLBACK_PLUGIN(KIND, NAME, VERSION, FACTORY)                                       \
  static_assert(sizeof(NAME) <= 64 && sizeof(VERSION) <= 32, "plugin name or version too long"); \
  extern "C" CALLBACK_EXPORT __attribute__((used, section(CALLBACK_PLUGIN_SECTION)))        \
  const callback_plugin_descriptor callback_plugin_descriptor_v1 = {                        \
      CALLBACK_PLUGIN_MAGIC, CALLBACK_PLUGIN_ABI_VERSION,                                   \
      sizeof(callback_plugin_descriptor), #KIND, NAME, VERSION, CALLBACK_BUILD_FINGERPRINT}; \
  extern "C" CALLBACK_EXPORT const ::callback::PluginFactory* callback_plugin_factory_v1(  \
      char* error, std::size_t error_size) noexcept {                                       \
    try {                                                                                   \
      static const FACTORY factory;                                                         \
      return &factory;                                                                      \
    } catch (const std::exception& e) {                                                     \
      ::callback::detail::copy_error(error, error_size, e.what());                          \
    } catch (...) {                                                                         \
      ::callback::detail::copy_error(error, error_size, "unknown exception");               \
    }                                                                                       \
    return nullptr;                                                                         \
  }

namespace callback::detail {
inline void copy_error(char* out, std::size_t size, const char* text) noexcept {
  if (size == 0) return;
  std::size_t i = 0;
  for (; i + 1 < size && text[i] != '\0'; ++i) out[i] = text[i];
  out[i] = '\0';
}
}  // namespace callback::detail
