#include <callback/options.hpp>

#include <boost/json/serialize.hpp>

#include <charconv>
#include <stdexcept>

namespace callback {

std::string_view to_string(OptionType type) noexcept {
  constexpr std::string_view names[] = {"string", "integer", "boolean", "string list", "object"};
  return names[static_cast<int>(type)];
}

std::string describe_json(const boost::json::value& value) {
  switch (value.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return value.get_bool() ? "true" : "false";
    case boost::json::kind::int64:
    case boost::json::kind::uint64: return "integer " + boost::json::serialize(value);
    case boost::json::kind::double_: {
      char text[32];
      const auto end = std::to_chars(text, text + sizeof text, value.get_double()).ptr;  // shortest form: 5038.5
      return "number " + std::string(text, end);
    }
    case boost::json::kind::string: {
      std::string text = boost::json::serialize(value);
      if (text.size() > 42) text = text.substr(0, 40) + "...\"";
      return text;
    }
    case boost::json::kind::array: return "array";
    case boost::json::kind::object: return "object";
  }
  return "value";
}

namespace {

bool matches(OptionType type, const boost::json::value& v) {
  switch (type) {
    case OptionType::string: return v.is_string();
    case OptionType::integer: return v.is_int64() || (v.is_uint64() && v.get_uint64() <= INT64_MAX);
    case OptionType::boolean: return v.is_bool();
    case OptionType::string_list: return v.is_array();
    case OptionType::object: return v.is_object();
  }
  return false;
}

Error type_error(const std::string& field, std::string_view expected, const boost::json::value& got) {
  return Error{"config.type", "expected " + std::string(expected) + ", got " + describe_json(got), field};
}

}  // namespace

Result<Options> validate_options(const std::vector<OptionSpec>& specs, const boost::json::value& block,
                                 const std::string& path) {
  if (!block.is_null() && !block.is_object()) return type_error(path, "object", block);
  boost::json::object values;
  if (block.is_object()) {
    for (const auto& [key, value] : block.get_object()) {
      const std::string field = path + "." + std::string(key);
      const OptionSpec* spec = nullptr;
      for (const auto& s : specs) {
        if (s.name == key) spec = &s;
      }
      if (spec == nullptr) {
        std::string known;
        for (const auto& s : specs) known += (known.empty() ? "" : ", ") + s.name;
        return Error{"config.unknown_key",
                     "unknown option" + (known.empty() ? std::string(" (this plugin takes no options)")
                                                       : " (known: " + known + ")"),
                     field};
      }
      const bool huge = spec->type == OptionType::integer && value.is_uint64() && value.get_uint64() > INT64_MAX;
      if (!huge && !matches(spec->type, value)) return type_error(field, to_string(spec->type), value);
      if (spec->type == OptionType::integer) {
        const bool below = !huge && spec->min && value.to_number<std::int64_t>() < *spec->min;
        const bool above = huge || (spec->max && value.to_number<std::int64_t>() > *spec->max);
        if (below || above) {
          std::string bounds = spec->min ? "at least " + std::to_string(*spec->min) : std::string();
          if (spec->max) bounds += (bounds.empty() ? "at most " : " and at most ") + std::to_string(*spec->max);
          if (bounds.empty()) bounds = "at most " + std::to_string(INT64_MAX);
          return Error{"config.range", "must be " + bounds + ", got " + boost::json::serialize(value), field};
        }
        const auto n = value.to_number<std::int64_t>();
        values[key] = n;
        continue;
      }
      if (spec->type == OptionType::string && !value.get_string().empty() && (spec->min || spec->max)) {
        // Bounds on a string's length (a secret's, say); an empty one is "not set".
        const auto length = static_cast<std::int64_t>(value.get_string().size());
        if ((spec->min && length < *spec->min) || (spec->max && length > *spec->max)) {
          std::string bounds = spec->min ? "at least " + std::to_string(*spec->min) : std::string();
          if (spec->max) bounds += (bounds.empty() ? "at most " : " and at most ") + std::to_string(*spec->max);
          // Never the value itself: it may be a secret.
          return Error{"config.range", "must be empty or " + bounds + " characters long, got " + std::to_string(length),
                       field};
        }
      }
      if (spec->type == OptionType::string && !spec->choices.empty()) {
        bool allowed = false;
        std::string list;
        for (const auto& choice : spec->choices) {
          allowed = allowed || value.get_string() == choice;
          list += (list.empty() ? "\"" : ", \"") + choice + "\"";
        }
        if (!allowed) return Error{"config.value", "must be one of " + list + ", got " + describe_json(value), field};
      }
      if (spec->type == OptionType::string_list) {
        const auto& array = value.get_array();
        for (std::size_t i = 0; i < array.size(); ++i) {
          if (!array[i].is_string()) {
            return type_error(field + "[" + std::to_string(i) + "]", "string", array[i]);
          }
        }
      }
      values[key] = value;
    }
  }
  for (const auto& spec : specs) {
    if (values.contains(spec.name)) continue;
    if (spec.required) return Error{"config.missing", "required option is missing", path + "." + spec.name};
    values[spec.name] = spec.default_value;
  }
  return Options(std::move(values), specs);
}

const boost::json::value& Options::get(std::string_view name, OptionType type) const {
  for (const auto& spec : specs_) {
    if (spec.name == name) {
      if (spec.type != type) {
        throw std::logic_error("option " + std::string(name) + " is a " + std::string(to_string(spec.type)) +
                               ", not a " + std::string(to_string(type)));
      }
      const auto* v = values_.if_contains(name);
      if (v == nullptr || v->is_null()) {
        throw std::logic_error("option " + std::string(name) + " has no value and no default");
      }
      return *v;
    }
  }
  throw std::logic_error("option " + std::string(name) + " is not declared");
}

bool Options::has(std::string_view name) const {
  const auto* v = values_.if_contains(name);
  return v != nullptr && !v->is_null();
}

std::string Options::string(std::string_view name) const {
  return std::string(get(name, OptionType::string).get_string());
}
std::int64_t Options::integer(std::string_view name) const {
  return get(name, OptionType::integer).to_number<std::int64_t>();
}
bool Options::boolean(std::string_view name) const { return get(name, OptionType::boolean).get_bool(); }
std::vector<std::string> Options::strings(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& v : get(name, OptionType::string_list).get_array()) out.emplace_back(v.get_string());
  return out;
}
const boost::json::object& Options::object(std::string_view name) const {
  return get(name, OptionType::object).get_object();
}

}  // namespace callback
