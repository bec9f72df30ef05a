// callback.trigger.email: callbacks asked for by e-mail, read from a mailbox over IMAP.
#include "email_trigger.hpp"

#include <callback/account.hpp>
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
        {.name = "smtp_url", .type = OptionType::string, .default_value = "",
         .description = "replies go out here: smtp://host:587 (STARTTLS when offered) or smtps://host; empty: no "
                        "replies"},
        {.name = "smtp_username", .type = OptionType::string, .default_value = "",
         .description = "the SMTP login, if the server wants one"},
        {.name = "smtp_password", .type = OptionType::string, .default_value = "", .description = "its password",
         .secret = true},
        {.name = "reply_from", .type = OptionType::string, .default_value = "",
         .description = "the replies' sender address (needed with smtp_url)"},
        {.name = "replies_per_hour", .type = OptionType::integer, .default_value = 10,
         .description = "replies to one address in an hour; more are not sent", .min = 1, .max = 1000},
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
    options.smtp = {.url = args.options.string("smtp_url"),
                    .username = args.options.string("smtp_username"),
                    .password = args.options.string("smtp_password"),
                    .from = args.options.string("reply_from")};
    options.replies_per_hour = static_cast<int>(args.options.integer("replies_per_hour"));
    if (!options.smtp.url.empty()) {
      if (!options.smtp.url.starts_with("smtp://") && !options.smtp.url.starts_with("smtps://")) {
        throw std::runtime_error("smtp_url: smtp://host:port or smtps://host:port, not \"" +
                                 escape_control(options.smtp.url) + "\"");
      }
      auto from = normalize_email(options.smtp.from);
      if (!from) throw std::runtime_error("reply_from: an address is needed with smtp_url: " + from.error().message);
      options.smtp.from = *from;
    }
    return std::make_unique<EmailTrigger>(args.context, *args.store, *args.plan, std::move(options));
  }
};

}  // namespace
}  // namespace callback::trigger_email

CALLBACK_PLUGIN(trigger, "callback.trigger.email", CALLBACK_VERSION_STRING, callback::trigger_email::Factory)
