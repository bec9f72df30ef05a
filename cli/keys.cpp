#include "keys.hpp"

#include "table.hpp"

#include "admin.hpp"
#include "api_keys.hpp"

#include <callback/config.hpp>
#include <callback/json.hpp>
#include <callback/timestamp.hpp>

#include <boost/json/serialize.hpp>

#include <ostream>

namespace callback::cli {

namespace json = boost::json;

namespace {


// The store backend of the config, which keeps the keys (as callbackd's).
struct OpenKeys {
  std::unique_ptr<Embedded> embedded;
  std::unique_ptr<rest::ApiKeys> keys;
  rest::ApiKeys* operator->() const { return keys.get(); }
};

Result<OpenKeys> open_keys(const PluginSource& source) {
  auto embedded = open_embedded(source, false);
  if (!embedded) return embedded.error();
  auto keys = rest::ApiKeys::over(*(*embedded)->store, std::chrono::milliseconds{0});
  if (!keys) return keys.error();
  return OpenKeys{std::move(*embedded), std::move(*keys)};
}

json::object key_json(const rest::ApiKeyInfo& k) {
  return {{"id", k.id},
          {"name", k.name},
          {"scope", rest::to_string(k.scope)},
          {"created_at", format_rfc3339(k.created_at)},
          {"revoked_at", k.revoked_at ? json::value(format_rfc3339(*k.revoked_at)) : json::value(nullptr)}};
}

}  // namespace

int keys_add(const PluginSource& source, const std::string& name, const std::string& scope_name,
             const Output& output) {
  const auto scope = rest::key_scope_from_string(scope_name);
  if (!scope) {
    return fail(output, Error{"invalid_scope", "a scope is callbacks, operator or admin", "scope"}, exit_bad_input);
  }
  auto keys = open_keys(source);
  if (!keys) return fail(output, keys.error(), exit_bad_input);
  auto created = (*keys)->add(name, *scope);
  if (!created) return fail(output, created.error(), created.error().code == "invalid_name" ? exit_bad_input : exit_failure);
  if (output.json) {
    json::object body = key_json(created->info);
    body["key"] = created->key;
    body["webhook_secret"] = created->info.webhook_secret;
    output.out << json::serialize(body) << '\n';
    return exit_ok;
  }
  output.out << "API key " << created->info.id << " (" << name << ", scope " << scope_name
             << ") created. It is shown only now:\n\n  " << created->key
             << "\n\nSend it as  Authorization: Bearer <key>  (or X-API-Key: <key>).\n"
             << "Status webhooks of this key's callbacks are signed with  " << created->info.webhook_secret
             << "\n(Callback-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, \"<unix>.<body>\")>; see API-CONTRACT.md).\n";
  return exit_ok;
}

int keys_list(const PluginSource& source, const Output& output) {
  auto keys = open_keys(source);
  if (!keys) return fail(output, keys.error(), exit_bad_input);
  auto list = (*keys)->list();
  if (!list) return fail(output, list.error(), exit_failure);
  if (output.json) {
    json::array out;
    for (const auto& k : *list) out.push_back(key_json(k));
    output.out << json::serialize(out) << '\n';
    return exit_ok;
  }
  Table table({"ID", "NAME", "SCOPE", "CREATED", "REVOKED"});
  for (const auto& k : *list) {
    table.add({k.id, k.name, std::string(rest::to_string(k.scope)), format_timestamp(k.created_at),
               k.revoked_at ? format_timestamp(*k.revoked_at) : ""});
  }
  table.print(output.out);
  return exit_ok;
}

int keys_revoke(const PluginSource& source, const std::string& id, const Output& output) {
  auto keys = open_keys(source);
  if (!keys) return fail(output, keys.error(), exit_bad_input);
  if (auto ok = (*keys)->revoke(id); !ok) {
    return fail(output, ok.error(), ok.error().code == "store_failed" ? exit_failure : exit_bad_input);
  }
  if (output.json) {
    output.out << json::serialize(json::object{{"id", id}, {"revoked", true}}) << '\n';
  } else {
    output.out << "API key " << id << " revoked; callbackd refuses it within a second.\n";
  }
  return exit_ok;
}

}  // namespace callback::cli
