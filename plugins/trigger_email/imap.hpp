#pragma once
// The mailbox the e-mail trigger polls, over IMAP with libcurl: one logged-in connection,
// kept between polls. Finds the mails not yet processed (no `keyword` flag), fetches their
// header fields without marking them read, and flags each once it is processed, so that
// a restart does not take a mail twice.
#include <callback/error.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace callback::trigger_email {

struct ImapOptions {
  std::string url;  // "imap://127.0.0.1:143/INBOX", "imaps://mail.example.com/INBOX"
  std::string username, password;
  long timeout_ms = 15'000;
};

struct FetchedHeader {
  std::uint32_t uid = 0;
  std::uint64_t size = 0;  // RFC822.SIZE: the whole mail's
  std::string header;      // From, Subject, Message-ID, as the server sent them
  bool too_large = false;  // the header fields were over the limit: not read
};

class ImapMailbox {
 public:
  explicit ImapMailbox(ImapOptions options);
  ~ImapMailbox();
  ImapMailbox(const ImapMailbox&) = delete;
  ImapMailbox& operator=(const ImapMailbox&) = delete;

  // The UIDs of mails without `keyword`, oldest first.
  [[nodiscard]] Result<std::vector<std::uint32_t>> unprocessed(const std::string& keyword);
  // Their sizes and header fields (From, Subject, Message-ID); header fields over
  // `max_header` bytes are not read (too_large).
  [[nodiscard]] Result<std::vector<FetchedHeader>> headers(const std::vector<std::uint32_t>& uids,
                                                           std::size_t max_header);
  // Flags the mail with `keyword` (and \Seen).
  [[nodiscard]] Status mark(std::uint32_t uid, const std::string& keyword);

 private:
  // One IMAP command on the kept connection (`text`; empty: the FETCH the URL names, with
  // `url_suffix` after the mailbox's URL); what it wrote, at most `limit` bytes.
  Result<std::string> command(const std::string& text, const std::string& url_suffix = {},
                              std::size_t limit = 16 * 1024 * 1024);

  ImapOptions options_;
  void* curl_ = nullptr;  // CURL*
};

// The pieces of the responses, exposed for tests: "* SEARCH 3 5 8" -> {3, 5, 8};
// "* 1 FETCH (UID 3 RFC822.SIZE 176)" lines -> each mail's UID and size.
[[nodiscard]] std::vector<std::uint32_t> parse_search(std::string_view response);
[[nodiscard]] std::vector<FetchedHeader> parse_sizes(std::string_view response);

}  // namespace callback::trigger_email
