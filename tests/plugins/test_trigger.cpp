// callback.test.trigger: a well-formed plugin with options of every type, for the loader
// and config tests. Its trigger records start/stop so tests can see the object is live.
#include <callback/plugin.hpp>
#include <callback/trigger.hpp>

namespace {

class TestTrigger final : public callback::Trigger {
 public:
  explicit TestTrigger(std::string host) : host_(std::move(host)) {}
  void start(callback::TriggerSink&) override { running_ = true; }
  void stop() override { running_ = false; }
  const std::string& host() const { return host_; }

 private:
  std::string host_;
  bool running_ = false;
};

class Factory final : public callback::PluginFactory {
 public:
  std::string description() const override { return "test trigger with options of every type"; }
  std::vector<callback::OptionSpec> options() const override {
    using callback::OptionType;
    return {
        {.name = "host", .type = OptionType::string, .default_value = "127.0.0.1", .description = "address"},
        {.name = "port", .type = OptionType::integer, .default_value = 5038, .description = "TCP port", .min = 1,
         .max = 65535},
        {.name = "secret", .type = OptionType::string, .description = "password", .required = true, .secret = true},
        {.name = "verbose", .type = OptionType::boolean, .default_value = false, .description = "log more"},
        {.name = "numbers", .type = OptionType::string_list, .default_value = boost::json::array{},
         .description = "numbers"},
        {.name = "mode", .type = OptionType::string, .default_value = "ani", .description = "which trigger",
         .choices = {"ani", "did"}},
    };
  }

 protected:
  std::unique_ptr<callback::Component> make(const callback::CreateArgs& args) const override {
    return std::make_unique<TestTrigger>(args.options.string("host"));
  }
};

}  // namespace

CALLBACK_PLUGIN(trigger, "callback.test.trigger", "9.8.7", Factory)
