// A plugin that needs a function nothing provides: loading must fail with the
// dynamic linker's reason, not crash later.
#include <callback/plugin.hpp>
#include <callback/trigger.hpp>

extern "C" void callback_test_function_nobody_defines();

namespace {
class Factory final : public callback::PluginFactory {
 public:
  std::string description() const override { return ""; }
  std::vector<callback::OptionSpec> options() const override { return {}; }

 protected:
  std::unique_ptr<callback::Component> make(const callback::CreateArgs&) const override {
    callback_test_function_nobody_defines();
    return nullptr;
  }
};
}  // namespace

CALLBACK_PLUGIN(trigger, "callback.test.unresolved_symbol", "1.0.0", Factory)
