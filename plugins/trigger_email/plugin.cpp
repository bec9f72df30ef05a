// callback.trigger.email: callbacks asked for by e-mail, read from a mailbox over IMAP.
#include "email_trigger.hpp"

#include <callback/plugin.hpp>

#include <stdexcept>

namespace callback::trigger_email {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "E-mail callbacks: an IMAP mailbox polled; subject \"<last 7 digits of the access number>#<number to call>\" "
           "from an address registered to an account";
  }
  std::vector<OptionSpec> options() const override {
    return {
        {.name = "imap_url", .type = OptionType::string, .description = "the mailbox: imap://host:143/INBOX or imaps://...",
         .required = true},
        {.name = "username", .type = OptionType::string, .description = "the mailbox's login", .required = true},
        {.name = "password", .type = OptionType::string, .description = "its password", .required = true,
         .secret = true},
        {.name = "poll_seconds", .type = OptionType::integer, .default_value = 30,
         .description = "how often the mailbox is read", .min = 1, .max = 86400},
        {.name = "access_numbers", .type = OptionType::string_list,
         .description = "the access numbers a subject may name by their last 7 digits", .required = true},
        {.name = "processed_flag", .type = OptionType::string, .default_value = "$CallbackDone",
         .description = "the IMAP keyword put on each mail once processed"},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    if (args.store == nullptr || args.plan == nullptr) {
      throw std::runtime_error("callback.trigger.email needs the service's store and numbering plan");
    }
    EmailOptions options;
    options.imap = {.url = args.options.string("imap_url"),
                    .username = args.options.string("username"),
                    .password = args.options.string("password")};
    options.poll_interval = std::chrono::seconds(args.options.integer("poll_seconds"));
    for (const auto& text : args.options.strings("access_numbers")) {
      auto number = PhoneNumber::parse(text, *args.plan);
      if (!number) throw std::runtime_error("access_numbers: " + text + ": " + number.error().message);
      options.access_numbers.push_back(number->digits());
    }
    if (options.access_numbers.empty()) throw std::runtime_error("access_numbers: give at least one");
    options.keyword = args.options.string("processed_flag");
    if (options.keyword.empty() || options.keyword.find_first_of(" ()\\{\"%*]\r\n") != std::string::npos) {
      throw std::runtime_error("processed_flag: an IMAP keyword is one atom ($CallbackDone)");
    }
    return std::make_unique<EmailTrigger>(args.context, *args.store, *args.plan, std::move(options));
  }
};

}  // namespace
}  // namespace callback::trigger_email

CALLBACK_PLUGIN(trigger, "callback.trigger.email", CALLBACK_VERSION_STRING, callback::trigger_email::Factory)
