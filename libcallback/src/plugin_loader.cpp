#include <callback/plugin_loader.hpp>

#include "enum_names.hpp"

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <dlfcn.h>
#include <elf.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

namespace callback {
namespace fs = std::filesystem;

PluginFactory::~PluginFactory() = default;

Result<std::unique_ptr<Component>> PluginFactory::create(const CreateArgs& args) const noexcept {
  try {
    auto component = make(args);
    if (!component) return Error{"factory_failed", "factory returned no object", {}};
    return component;
  } catch (const Exception& e) {
    return e.error();
  } catch (const std::exception& e) {
    return Error{"factory_threw", std::string("factory threw: ") + e.what(), {}};
  } catch (...) {
    return Error{"factory_threw", "factory threw an unknown exception", {}};
  }
}

namespace {
constexpr std::string_view kind_names[] = {"store", "billing", "engine", "trigger", "frontend"};
}

std::string_view to_string(PluginKind kind) noexcept { return kind_names[static_cast<int>(kind)]; }

std::optional<PluginKind> plugin_kind_from_string(std::string_view s) noexcept {
  return detail::enum_from_name<PluginKind>(kind_names, s);
}

std::string_view to_string(PluginStatus s) noexcept {
  constexpr std::string_view names[] = {"available", "loaded", "shadowed", "failed"};
  return names[static_cast<int>(s)];
}

namespace {

Error plugin_error(const fs::path& file, std::string code, const std::string& message) {
  return Error{std::move(code), message, file.string()};
}

std::string fixed_string(const char* field, std::size_t size) { return std::string(field, strnlen(field, size)); }

// Reads `count` bytes at `offset`, refusing anything outside the file.
bool read_at(std::ifstream& in, std::uint64_t file_size, std::uint64_t offset, void* out, std::uint64_t count) {
  if (offset > file_size || count > file_size - offset) return false;
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(static_cast<char*>(out), static_cast<std::streamsize>(count));
  return static_cast<bool>(in);
}

}  // namespace

Result<PluginInfo> read_plugin_descriptor(const fs::path& file) {
  std::error_code ec;
  const auto file_size = fs::file_size(file, ec);
  if (ec) return plugin_error(file, "plugin_missing", "cannot read plugin file: " + ec.message());
  std::ifstream in(file, std::ios::binary);
  if (!in) return plugin_error(file, "plugin_missing", "cannot open plugin file");

  Elf64_Ehdr header{};
  if (!read_at(in, file_size, 0, &header, sizeof header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) {
    return plugin_error(file, "not_a_library", "not a shared library (no ELF header)");
  }
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB ||
      (header.e_machine != EM_X86_64 && header.e_machine != EM_AARCH64)) {
    return plugin_error(file, "not_a_library", "shared library for another machine (not 64-bit little-endian)");
  }
  if (header.e_type != ET_DYN) {
    return plugin_error(file, "not_a_library", "ELF file is not a shared library (e_type " +
                                                   std::to_string(header.e_type) + ")");
  }
  if (header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shnum == 0 || header.e_shstrndx >= header.e_shnum) {
    return plugin_error(file, "not_a_plugin", "not a callback plugin (no section table)");
  }
  std::vector<Elf64_Shdr> sections(header.e_shnum);
  if (!read_at(in, file_size, header.e_shoff, sections.data(), sizeof(Elf64_Shdr) * sections.size())) {
    return plugin_error(file, "not_a_library", "truncated shared library (section table past end of file)");
  }
  const auto& names = sections[header.e_shstrndx];
  if (names.sh_size > (1u << 20)) return plugin_error(file, "not_a_library", "corrupt section name table");
  std::string name_table(names.sh_size, '\0');
  if (!read_at(in, file_size, names.sh_offset, name_table.data(), names.sh_size)) {
    return plugin_error(file, "not_a_library", "truncated shared library (section names past end of file)");
  }
  const Elf64_Shdr* descriptor_section = nullptr;
  for (const auto& section : sections) {
    if (section.sh_name < name_table.size() &&
        std::strcmp(name_table.c_str() + section.sh_name, CALLBACK_PLUGIN_SECTION) == 0) {
      descriptor_section = &section;
    }
  }
  if (descriptor_section == nullptr) {
    return plugin_error(file, "not_a_plugin",
                        "not a callback plugin (no \"" CALLBACK_PLUGIN_SECTION "\" descriptor; declare one with CALLBACK_PLUGIN)");
  }
  callback_plugin_descriptor d{};
  // Read the fixed head first: a descriptor from another ABI may have another size.
  constexpr std::size_t head = offsetof(callback_plugin_descriptor, kind);
  if (descriptor_section->sh_type != SHT_PROGBITS || descriptor_section->sh_size < head ||
      !read_at(in, file_size, descriptor_section->sh_offset, &d, head) ||
      std::memcmp(d.magic, CALLBACK_PLUGIN_MAGIC, sizeof CALLBACK_PLUGIN_MAGIC) != 0) {
    return plugin_error(file, "not_a_plugin", "not a callback plugin (descriptor has no valid magic)");
  }
  if (d.abi_version != CALLBACK_PLUGIN_ABI_VERSION) {
    return plugin_error(file, "plugin_abi_mismatch",
                        "built for plugin ABI " + std::to_string(d.abi_version) + ", but this callback " +
                            CALLBACK_VERSION_STRING " uses ABI " + std::to_string(CALLBACK_PLUGIN_ABI_VERSION) +
                            "; rebuild the plugin against this version");
  }
  if (d.descriptor_size != sizeof d || descriptor_section->sh_size < sizeof d ||
      !read_at(in, file_size, descriptor_section->sh_offset, &d, sizeof d)) {
    return plugin_error(file, "not_a_plugin", "plugin descriptor is truncated or of the wrong size");
  }
  PluginInfo info;
  info.path = file;
  info.name = fixed_string(d.name, sizeof d.name);
  info.kind = fixed_string(d.kind, sizeof d.kind);
  info.version = fixed_string(d.version, sizeof d.version);
  info.fingerprint = fixed_string(d.fingerprint, sizeof d.fingerprint);
  if (info.name.empty()) return plugin_error(file, "not_a_plugin", "plugin descriptor has no name");
  if (!plugin_kind_from_string(info.kind)) {
    return plugin_error(file, "not_a_plugin", info.name + ": unknown plugin kind \"" + info.kind + "\"");
  }
  if (info.fingerprint != CALLBACK_BUILD_FINGERPRINT) {
    return plugin_error(file, "plugin_abi_mismatch",
                        info.name + " was built with \"" + info.fingerprint + "\", but this callback with \"" +
                            CALLBACK_BUILD_FINGERPRINT "\"; rebuild the plugin with the same compiler and options");
  }
  return info;
}

std::vector<fs::path> default_plugin_path() {
  std::vector<fs::path> path;
  if (const char* env = std::getenv("CALLBACK_PLUGIN_PATH"); env != nullptr && *env != '\0') {
    std::string_view rest = env;
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      if (colon != 0) path.emplace_back(std::string(rest.substr(0, colon)));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  return path;
}

namespace {
// Dirs that come after the config's: beside libcallback.so, then the install dir.
std::vector<fs::path> builtin_plugin_dirs() {
  std::vector<fs::path> dirs;
  boost::system::error_code ec;
  const auto self = boost::dll::this_line_location(ec);
  if (!ec) dirs.push_back(fs::path(self.string()).parent_path() / "callback" / "plugins");
  dirs.emplace_back(CALLBACK_PLUGIN_INSTALL_FULLDIR);
  return dirs;
}
}  // namespace

PluginLoader::PluginLoader(std::vector<fs::path> extra_dirs) {
  std::set<std::string> seen;
  auto add = [&](const fs::path& dir) {
    std::error_code ec;
    auto canonical = fs::weakly_canonical(dir, ec);
    const std::string key = (ec ? dir : canonical).lexically_normal().string();
    if (seen.insert(key).second) search_path_.emplace_back(key);
  };
  for (const auto& d : default_plugin_path()) add(d);
  for (const auto& d : extra_dirs) add(d);
  for (const auto& d : builtin_plugin_dirs()) add(d);
}

PluginLoader::~PluginLoader() = default;

std::vector<PluginInfo> PluginLoader::discover(bool load) {
  std::vector<PluginInfo> found;
  std::set<std::string> names;
  for (const auto& dir : search_path_) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().extension() == ".so" && entry.is_regular_file(ec)) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      auto descriptor = read_plugin_descriptor(file);
      if (!descriptor) {
        PluginInfo failed;
        failed.path = file;
        failed.status = PluginStatus::failed;
        failed.error = descriptor.error().message;
        found.push_back(std::move(failed));
        continue;
      }
      PluginInfo info = std::move(*descriptor);
      if (!names.insert(info.name).second) {
        info.status = PluginStatus::shadowed;
        info.error = "a plugin of the same name comes earlier in the search path";
      } else if (load) {
        auto plugin = this->load(info);
        if (plugin) {
          info.status = PluginStatus::loaded;
        } else {
          info.status = PluginStatus::failed;
          info.error = plugin.error().message;
        }
      }
      found.push_back(std::move(info));
    }
  }
  return found;
}

Result<const PluginLoader::Plugin*> PluginLoader::find(std::string_view name) {
  for (const auto& plugin : loaded_) {
    if (plugin->info.name == name) return plugin.get();
  }
  std::size_t unreadable = 0;
  for (const auto& info : discover(false)) {
    if (info.name == name && info.status == PluginStatus::available) {
      return load(info);  // its errors name the file and the plugin
    }
    if (info.name.empty()) ++unreadable;
  }
  std::string where;
  for (const auto& dir : search_path_) where += (where.empty() ? "" : ", ") + dir.string();
  std::string message = "no plugin named \"" + std::string(name) + "\" in the search path (" + where + ")";
  if (unreadable > 0) {
    message += "; " + std::to_string(unreadable) +
               " files in the search path could not be read as plugins, `callbackctl plugins list` says why";
  } else {
    message += "; `callbackctl plugins list` shows the plugins there";
  }
  return Error{"plugin_unknown", message, std::string(name)};
}

Result<const PluginLoader::Plugin*> PluginLoader::load_file(const fs::path& file) {
  auto descriptor = read_plugin_descriptor(file);
  if (!descriptor) return descriptor.error();
  for (const auto& plugin : loaded_) {
    if (plugin->info.name == descriptor->name && plugin->info.path != descriptor->path) {
      return Error{"plugin_conflict", "a plugin named " + descriptor->name + " is already loaded from " +
                                          plugin->info.path.string(), file.string()};
    }
  }
  return load(std::move(*descriptor));
}

Result<const PluginLoader::Plugin*> PluginLoader::load(PluginInfo info) {
  for (const auto& plugin : loaded_) {
    if (plugin->info.path == info.path) return plugin.get();
  }
  const fs::path file = info.path;
  std::shared_ptr<boost::dll::shared_library> library;
  try {
    // rtld_now: an unresolved symbol fails here, not in the middle of a call.
    library = std::make_shared<boost::dll::shared_library>(
        boost::dll::fs::path(file.string()), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    // Boost.DLL drops dlerror()'s text; ask once more to say what is wrong.
    std::string why = e.what();
    if (void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL); handle != nullptr) {
      dlclose(handle);
    } else if (const char* text = dlerror(); text != nullptr) {
      why = text;
    }
    return plugin_error(file, "plugin_load_failed", info.name + " cannot be loaded: " + why);
  }
  if (!library->has(CALLBACK_PLUGIN_ENTRY_SYMBOL) || !library->has(CALLBACK_PLUGIN_DESCRIPTOR_SYMBOL)) {
    return plugin_error(file, "plugin_missing_symbol",
                        info.name + " has no entry point " CALLBACK_PLUGIN_ENTRY_SYMBOL
                                    " (declare the plugin with CALLBACK_PLUGIN)");
  }
  const auto& loaded_descriptor = library->get<const callback_plugin_descriptor>(CALLBACK_PLUGIN_DESCRIPTOR_SYMBOL);
  if (fixed_string(loaded_descriptor.name, sizeof loaded_descriptor.name) != info.name) {
    return plugin_error(file, "not_a_plugin", info.name + ": loaded descriptor differs from the file's");
  }
  auto entry = library->get<std::remove_pointer_t<PluginEntry>>(CALLBACK_PLUGIN_ENTRY_SYMBOL);
  char error[512] = {};
  const PluginFactory* factory = entry(error, sizeof error);
  if (factory == nullptr) {
    return plugin_error(file, "factory_threw", info.name + ": factory could not be created: " +
                                                   (error[0] != '\0' ? std::string(error) : "no reason given"));
  }
  info.status = PluginStatus::loaded;
  auto plugin = std::make_unique<Plugin>();
  plugin->info = std::move(info);
  plugin->factory = factory;
  plugin->library = std::move(library);
  loaded_.push_back(std::move(plugin));
  return loaded_.back().get();
}

std::string with_article(std::string_view word) {
  const bool vowel = !word.empty() && std::string_view("aeiou").find(word.front()) != std::string_view::npos;
  return (vowel ? "an " : "a ") + std::string(word);
}

Status PluginLoader::check_kind(const PluginInfo& info, PluginKind expected) {
  if (info.kind != to_string(expected)) {
    return Error{"plugin_wrong_kind",
                 "is " + with_article(info.kind) + " plugin, but " + with_article(to_string(expected)) +
                     " plugin is needed here" +
                     (info.kind == std::string_view("trigger") ? " (list it under \"triggers\")" : ""),
                 info.name};
  }
  return ok_status();
}

}  // namespace callback
