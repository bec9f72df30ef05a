// callback.test.factory_throws: the factory's own constructor throws; the entry point
// must turn that into an error string, never let it cross into the loader.
#include <callback/plugin.hpp>

#include <stdexcept>

namespace {
class Factory final : public callback::PluginFactory {
 public:
  Factory() { throw std::runtime_error("factory constructor failed"); }
  std::string description() const override { return ""; }
  std::vector<callback::OptionSpec> options() const override { return {}; }

 protected:
  std::unique_ptr<callback::Component> make(const callback::CreateArgs&) const override { return nullptr; }
};
}  // namespace

CALLBACK_PLUGIN(trigger, "callback.test.factory_throws", "1.0.0", Factory)
