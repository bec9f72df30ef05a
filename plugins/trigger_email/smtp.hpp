#pragma once
// The e-mail trigger's replies: one plain-text mail (UTF-8) a request, over SMTP with
// libcurl (smtp://, STARTTLS when the server offers it, or smtps://). Every header is
// ours: the recipient is an address registered to an account, the subject and body are
// our text, and the request's Message-ID is copied (In-Reply-To, References) only when it
// is a plain id. The trigger's Outbox (callback/outbox.hpp) queues and retries.
#include <callback/timestamp.hpp>

#include <chrono>
#include <string>

namespace callback::trigger_email {

struct SmtpOptions {
  std::string url;  // "smtp://mail.example.com:587", "smtps://mail.example.com"; empty: no replies
  std::string username;
  std::string password;
  std::string from;  // the replies' sender address ("callback@example.com")
  std::chrono::seconds timeout{30};
};

struct ReplyMail {
  std::string to;           // a normalized address
  std::string subject;      // UTF-8
  std::string body;         // UTF-8 text; lines end in \n
  std::string in_reply_to;  // the request's Message-ID without < >, or empty
};

// The message as it goes over the wire (RFC 5322 with CRLF line ends): Date, From, To,
// Subject (RFC 2047 when not ASCII), Message-ID, In-Reply-To and References, MIME, and the
// body in base64.
[[nodiscard]] std::string format_mail(const ReplyMail& mail, const std::string& from, Timestamp now,
                                      const std::string& message_id);

// A Message-ID we may copy into a header: printable ASCII, no spaces or angle brackets,
// one '@', at most 250 characters.
[[nodiscard]] bool plain_message_id(const std::string& id);

// One try: sent (the server took it), or false and why not.
bool send_mail(const SmtpOptions& smtp, const std::string& to, const std::string& data, std::string& why);

}  // namespace callback::trigger_email
