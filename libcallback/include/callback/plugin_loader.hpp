#pragma once
// PluginLoader: finds plugins, checks them, loads them, and creates components.
// Search path, first match wins: `CALLBACK_PLUGIN_PATH` (colon-separated), the config's
// `plugin_dirs`, `<dir of libcallback.so>/callback/plugins` (this is the build tree's
// `build/lib/callback/plugins` as well as the installed `<prefix>/lib/callback/plugins`),
// and the configured install directory.
//
//   PluginLoader loader{config.plugin_dirs};
//   auto engine = loader.create<Engine>("callback.engine.ami", {context, options});
//   if (!engine) die(engine.error().describe());
//   // "callback.engine.ami: /usr/lib/callback/plugins/x.so: built for plugin ABI 2, ..."
//
// Each object created holds its library loaded until it is destroyed, so a library can
// never be unloaded under a live object. Every failure is one Error with one clear line.
#include <callback/component.hpp>
#include <callback/config.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/plugin.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

// Deletes a plugin's object first, then lets go of its library (also on reset()).
struct PluginDeleter {
  mutable std::shared_ptr<const void> library;
  template <class T>
  void operator()(T* object) const noexcept {
    delete object;
    library.reset();
  }
};
template <class T>
using PluginPtr = std::unique_ptr<T, PluginDeleter>;

enum class PluginStatus {
  available,  // descriptor read and valid; not loaded yet
  loaded,     // loaded and its factory answered
  shadowed,   // same name found earlier in the search path
  failed,     // see `error`
};
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(PluginStatus s) noexcept;

struct PluginInfo {
  std::filesystem::path path;
  std::string name;  // empty when the descriptor could not be read
  std::string kind;
  std::string version;
  std::string fingerprint;
  PluginStatus status = PluginStatus::available;
  std::string error;  // for failed: one line
};

// Reads and checks a file's descriptor without loading it: not ELF, no descriptor,
// ABI or fingerprint mismatch are Errors.
[[nodiscard]] CALLBACK_EXPORT Result<PluginInfo> read_plugin_descriptor(const std::filesystem::path& file);

class CALLBACK_EXPORT PluginLoader {
 public:
  explicit PluginLoader(std::vector<std::filesystem::path> extra_dirs = {});
  ~PluginLoader();
  PluginLoader(const PluginLoader&) = delete;
  PluginLoader& operator=(const PluginLoader&) = delete;

  [[nodiscard]] const std::vector<std::filesystem::path>& search_path() const noexcept { return search_path_; }

  // Every candidate file (*.so) in the search path, with what is known of it. With
  // `load`, each valid one is also loaded to check that its factory answers.
  [[nodiscard]] std::vector<PluginInfo> discover(bool load = true);

  struct Plugin {
    PluginInfo info;
    const PluginFactory* factory = nullptr;
    std::shared_ptr<const void> library;
  };
  // Finds by canonical name along the search path, loads it once.
  [[nodiscard]] Result<const Plugin*> find(std::string_view name);
  // Loads one file, checked the same way (for `plugins describe ./x.so` and tests).
  [[nodiscard]] Result<const Plugin*> load_file(const std::filesystem::path& file);

  // Creates a component of kind T (Store, Billing, Engine, Trigger, FrontEnd).
  template <class T>
  [[nodiscard]] Result<PluginPtr<T>> create(std::string_view name, const CreateArgs& args) {
    auto plugin = find(name);
    if (!plugin) return plugin.error();
    if (auto kind_ok = check_kind((*plugin)->info, kind_of<T>()); !kind_ok) return kind_ok.error();
    auto made = (*plugin)->factory->create(args);
    if (!made) return made.error().within(std::string(name));
    std::unique_ptr<Component> component = std::move(*made);
    auto* typed = dynamic_cast<T*>(component.get());
    if (typed == nullptr) {
      return Error{"plugin_wrong_type", "factory created an object that is not a " + std::string(to_string(kind_of<T>())),
                   std::string(name)};
    }
    component.release();
    return PluginPtr<T>(typed, PluginDeleter{(*plugin)->library});
  }

  // As create(), from a config file's component: validates its block against the
  // factory's options first, so mistakes name their JSON path ("engines[0].config.port").
  template <class T>
  [[nodiscard]] Result<PluginPtr<T>> create_from_config(const ComponentConfig& component, Context& context,
                                                        Store* store = nullptr,
                                                        const NumberingPlan* plan = nullptr,
                                                        HttpRoutes* routes = nullptr, Engine* engine = nullptr) {
    auto plugin = find(component.plugin);
    if (!plugin) return plugin.error().at(component.path + ".plugin");
    auto options = validate_options((*plugin)->factory->options(), component.config, component.path + ".config");
    if (!options) return options.error();
    auto created = create<T>(component.plugin, CreateArgs{context, *options, component.name, store, plan, routes, engine});
    if (!created) return created.error().at(component.path);
    return created;
  }

  template <class T>
  static constexpr PluginKind kind_of();
  // Error "is a trigger plugin, but a store plugin is needed here" if the kinds differ.
  static Status check_kind(const PluginInfo& info, PluginKind expected);

 private:
  Result<const Plugin*> load(PluginInfo info);
  std::vector<std::filesystem::path> search_path_;
  std::vector<std::unique_ptr<Plugin>> loaded_;
};

class Store;
class Billing;
class Engine;
class Trigger;
class FrontEnd;
template <> constexpr PluginKind PluginLoader::kind_of<Store>() { return PluginKind::store; }
template <> constexpr PluginKind PluginLoader::kind_of<Billing>() { return PluginKind::billing; }
template <> constexpr PluginKind PluginLoader::kind_of<Engine>() { return PluginKind::engine; }
template <> constexpr PluginKind PluginLoader::kind_of<Trigger>() { return PluginKind::trigger; }
template <> constexpr PluginKind PluginLoader::kind_of<FrontEnd>() { return PluginKind::frontend; }

// "a store", "an engine": for messages about plugin kinds.
[[nodiscard]] CALLBACK_EXPORT std::string with_article(std::string_view word);

// The default search path without config dirs (see above).
[[nodiscard]] CALLBACK_EXPORT std::vector<std::filesystem::path> default_plugin_path();

}  // namespace callback
