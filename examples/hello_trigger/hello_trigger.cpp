// The smallest complete plugin, built outside the callback tree against the installed
// package: one macro declares it, the factory declares its options.
#include <callback/plugin.hpp>
#include <callback/trigger.hpp>

namespace {

class HelloTrigger final : public callback::Trigger {
 public:
  explicit HelloTrigger(callback::Logger& log, std::string greeting) : log_(log), greeting_(std::move(greeting)) {}
  void start(callback::TriggerSink&) override { log_.info("example.trigger.hello", greeting_); }
  void stop() override {}

 private:
  callback::Logger& log_;
  std::string greeting_;
};

class Factory final : public callback::PluginFactory {
 public:
  std::string description() const override { return "example trigger that greets when started"; }
  std::vector<callback::OptionSpec> options() const override {
    return {{.name = "greeting", .type = callback::OptionType::string, .default_value = "hello",
             .description = "what to log at start"}};
  }

 protected:
  std::unique_ptr<callback::Component> make(const callback::CreateArgs& args) const override {
    return std::make_unique<HelloTrigger>(args.context.log, args.options.string("greeting"));
  }
};

}  // namespace

CALLBACK_PLUGIN(trigger, "example.trigger.hello", "1.0.0", Factory)
