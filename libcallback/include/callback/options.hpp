#pragma once
// Options: a plugin's config block, checked against the options its factory declares.
// Each OptionSpec names one key with its type, default and a one-line description
// (`callbackctl plugins describe` prints them). Validation rejects unknown keys and wrong
// types with the JSON path of the mistake, fills in defaults, and leaves a typed view.
//
//   std::vector<OptionSpec> specs{
//       {.name = "port", .type = OptionType::integer, .default_value = 5038,
//        .description = "AMI TCP port", .min = 1, .max = 65535}};
//   auto options = validate_options(specs, block, "engines[0].config");
//   // Error: engines[0].config.port: expected integer, got "abc"
//   options->integer("port");  // 5038
#include <callback/error.hpp>
#include <callback/export.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

enum class OptionType { string, integer, boolean, string_list, object };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(OptionType type) noexcept;

struct OptionSpec {
  std::string name;
  OptionType type = OptionType::string;
  boost::json::value default_value;  // null: no default
  std::string description;
  bool required = false;  // must be given (no default makes sense)
  bool secret = false;    // never printed back (passwords); use ${ENV_VAR}
  std::optional<std::int64_t> min, max;  // integers: inclusive bounds; strings: a non-empty one's length
  std::vector<std::string> choices;      // strings: the allowed values, if limited
};

class CALLBACK_EXPORT Options {
 public:
  Options() = default;
  Options(boost::json::object values, std::vector<OptionSpec> specs)
      : values_(std::move(values)), specs_(std::move(specs)) {}

  // Typed access to declared options. Asking for an undeclared option, or with the
  // wrong type, is a bug in the plugin and throws std::logic_error.
  [[nodiscard]] std::string string(std::string_view name) const;
  [[nodiscard]] std::int64_t integer(std::string_view name) const;
  [[nodiscard]] bool boolean(std::string_view name) const;
  [[nodiscard]] std::vector<std::string> strings(std::string_view name) const;
  [[nodiscard]] const boost::json::object& object(std::string_view name) const;
  [[nodiscard]] bool has(std::string_view name) const;  // given or defaulted (not null)

  [[nodiscard]] const boost::json::object& values() const noexcept { return values_; }
  [[nodiscard]] const std::vector<OptionSpec>& specs() const noexcept { return specs_; }

 private:
  const boost::json::value& get(std::string_view name, OptionType type) const;
  boost::json::object values_;
  std::vector<OptionSpec> specs_;
};

// `path` prefixes error fields: "engines[0].config". A null block means "no options".
[[nodiscard]] CALLBACK_EXPORT Result<Options> validate_options(const std::vector<OptionSpec>& specs,
                                                               const boost::json::value& block,
                                                               const std::string& path);

// How a JSON value is named in errors: integer, string "abc", array, ...
[[nodiscard]] CALLBACK_EXPORT std::string describe_json(const boost::json::value& value);

}  // namespace callback
