#pragma once
// callback.trigger.email, the parts without I/O: what a mail's header says (GMime reads
// it: RFC 5322 addresses, RFC 2047 encoded words in any charset), and what its subject
// asks for (the seed's: the last 7 digits of the access number, optionally '#' and B).
//
//   auto header = parse_mail_header("From: Li Lei <li@example.com>\r\nSubject: =?UTF-8?B?...?=\r\n\r\n");
//   auto command = parse_subject("５５５１２３４＃１３９００１３９０００");   // {"5551234", "13900139000"}
#include <callback/error.hpp>

#include <string>
#include <string_view>

namespace callback::trigger_email {

struct MailHeader {
  std::string from;        // the sender's address (the first mailbox of From), as written
  std::string subject;     // decoded to UTF-8
  std::string message_id;  // without < >; empty when none
};
// An Error "invalid_mail" when it has no From mailbox; the header block is at most what
// the poller fetched (a few KiB: huge headers are refused before they are parsed).
[[nodiscard]] Result<MailHeader> parse_mail_header(std::string_view header_block);

// Full-width digits, '＃', '＋' and the ideographic space as their ASCII forms (what an
// input method types for Chinese text).
[[nodiscard]] std::string fold_full_width(std::string_view utf8);

struct EmailCommand {
  std::string access_suffix;  // 7 digits: which access number the mail was for
  std::string callee;         // as written ("13900139000", "+86 139..."); empty: collect it with the IVR
};
// The subject, full-width forms folded, spaces allowed around the parts; "Re:", "Fwd:" and
// the like in front are skipped. An Error "invalid_subject" says what the forms are.
[[nodiscard]] Result<EmailCommand> parse_subject(std::string_view subject);

}  // namespace callback::trigger_email
