// callback.test.throws_on_create: loads fine, its factory's make() throws.
#include <callback/plugin.hpp>
#include <callback/trigger.hpp>

#include <stdexcept>

namespace {
class Factory final : public callback::PluginFactory {
 public:
  std::string description() const override { return "throws when asked to create"; }
  std::vector<callback::OptionSpec> options() const override { return {}; }

 protected:
  std::unique_ptr<callback::Component> make(const callback::CreateArgs&) const override {
    throw std::runtime_error("cannot reach 127.0.0.1:5038");
  }
};
}  // namespace

CALLBACK_PLUGIN(trigger, "callback.test.throws_on_create", "1.0.0", Factory)
