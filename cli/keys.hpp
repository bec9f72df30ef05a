#pragma once
// callbackctl keys: API keys for callbackd's API (stored hashed), each with a scope.
#include "commands.hpp"

#include <string>

namespace callback::cli {

int keys_add(const PluginSource& source, const std::string& name, const std::string& scope, const Output& output);
int keys_list(const PluginSource& source, const Output& output);
int keys_revoke(const PluginSource& source, const std::string& id, const Output& output);

}  // namespace callback::cli
