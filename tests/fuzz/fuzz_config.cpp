// Fuzzes the config file (JSON with comments, ${NAME} from the environment). Invariants:
// a value that parses serializes to JSON that parses; the config's
// verdict (accepted, or the error's code and field) is the same for the file and for its
// comment-free serialization; an accepted config holds a valid numbering plan and no
// negative durations; every refusal says what and where.
#include "fuzz_check.hpp"

#include <callback/config.hpp>

#include <boost/json/serialize.hpp>

using callback_fuzz::Input;
namespace json = boost::json;

namespace {

std::optional<std::string> environment(std::string_view name) {
  if (name == "AMI_SECRET") return std::string("s3cret");
  if (name == "DATA") return std::string("/var/lib/callback");
  if (name == "WEIRD") return std::string("${AMI_SECRET}\"\n\\");  // substituted once, never again
  return std::nullopt;
}

std::string verdict(const callback::Result<callback::ServiceConfig>& r) {
  return r.ok() ? std::string("ok") : r.error().code + " at " + r.error().field;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::string_view text = in.rest();

  auto value = callback::parse_json_with_comments(text);
  if (value) {
    const std::string serialized = json::serialize(*value);
    // (Not the same value: Boost.JSON prints doubles with 15 digits, so 1e85-sized
    // numbers do not survive; that is Boost's, and no config field is a double.)
    auto again = callback::parse_json_with_comments(serialized);
    FUZZ_CHECK(again.ok(), text, serialized);
  } else {
    FUZZ_CHECK(!value.error().message.empty() && !value.error().field.empty(), text);
  }

  auto config = callback::parse_config(text, environment);
  if (!config) {
    FUZZ_CHECK(!config.error().message.empty() && !config.error().code.empty(), text);
  } else {
    FUZZ_CHECK(value.ok(), text);
    FUZZ_CHECK(config->numbering.validate().ok(), text);
    const auto& s = config->service;
    FUZZ_CHECK(s.a_ring_timeout.count() >= 0 && s.b_ring_timeout.count() >= 0 && s.warning_before.count() >= 0 &&
                   s.warning_repeat.count() >= 0 && s.max_duration.count() >= 0 && s.stage_grace.count() >= 0,
               text);
    for (const auto* c : {&config->store, &config->billing}) {
      if (*c) FUZZ_CHECK(!(*c)->plugin.empty(), text);
    }
  }
  if (value) {
    auto from_serialized = callback::parse_config(json::serialize(*value), environment);
    FUZZ_CHECK(verdict(config) == verdict(from_serialized), text, verdict(config), verdict(from_serialized));
  }
  return 0;
}
