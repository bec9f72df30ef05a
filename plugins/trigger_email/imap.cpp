#include "imap.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace callback::trigger_email {

namespace {

struct Collected {
  std::string text;
  std::size_t limit = 0;
  bool cut = false;
};

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  auto* collected = static_cast<Collected*>(out);
  if (collected->text.size() + size * n > collected->limit) {  // not what was asked for: stop reading it
    collected->cut = true;
    return 0;
  }
  collected->text.append(data, size * n);
  return size * n;
}

std::string uid_set(const std::vector<std::uint32_t>& uids) {
  std::string out;
  for (const auto uid : uids) {
    if (!out.empty()) out += ',';
    out += std::to_string(uid);
  }
  return out;
}

// Reads a number at `at`, moving past it.
template <class T>
bool read_number(std::string_view text, std::size_t& at, T& value) {
  const auto* begin = text.data() + at;
  auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
  if (ec != std::errc{} || end == begin) return false;
  at += static_cast<std::size_t>(end - begin);
  return true;
}

}  // namespace

std::vector<std::uint32_t> parse_search(std::string_view response) {
  std::vector<std::uint32_t> uids;
  for (auto at = response.find("* SEARCH"); at != std::string_view::npos; at = response.find("* SEARCH", at)) {
    at += 8;
    while (at < response.size() && response[at] != '\r' && response[at] != '\n') {
      if (response[at] == ' ') {
        ++at;
        continue;
      }
      std::uint32_t uid = 0;
      if (!read_number(response, at, uid)) break;
      uids.push_back(uid);
    }
  }
  return uids;
}

ImapMailbox::ImapMailbox(ImapOptions options) : options_(std::move(options)) {
  // The mailbox is the URL's path after the host ("INBOX" in imap://host:143/INBOX).
  const auto scheme = options_.url.find("://");
  const auto slash = options_.url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  mailbox_ = slash == std::string::npos ? "INBOX" : options_.url.substr(slash + 1);
  if (mailbox_.empty()) mailbox_ = "INBOX";
  if (mailbox_.find_first_of(" \"(){%*\\") != std::string::npos) mailbox_ = "\"" + mailbox_ + "\"";
}

ImapMailbox::~ImapMailbox() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<std::string> ImapMailbox::command(const std::string& text, const std::string& url_suffix, std::size_t limit) {
  if (curl_ == nullptr) {
    curl_ = curl_easy_init();
    if (curl_ == nullptr) return Error{"imap.unavailable", "libcurl could not start", "imap"};
  }
  auto* curl = static_cast<CURL*>(curl_);
  Collected response{.limit = limit};
  const std::string url = options_.url + url_suffix;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_USERNAME, options_.username.c_str());
  curl_easy_setopt(curl, CURLOPT_PASSWORD, options_.password.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "imap,imaps");
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, text.empty() ? nullptr : text.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  const CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_WRITE_ERROR && response.cut) {
    return Error{"imap.too_large", "more than " + std::to_string(limit) + " bytes where a mail's header was expected",
                 "imap"};
  }
  if (rc != CURLE_OK) {
    return Error{"imap.unavailable", "the mailbox " + options_.url + " answered no (" + curl_easy_strerror(rc) + ")",
                 "imap"};
  }
  return std::move(response.text);
}

Result<std::vector<std::uint32_t>> ImapMailbox::unprocessed(const std::string& keyword, std::size_t most) {
  // The mailbox stays selected between polls: NOOP makes the server look for new mail
  // (dovecot does not for a SEARCH alone).
  if (auto noop = command("NOOP"); !noop) return noop.error();
  auto status = command("STATUS " + mailbox_ + " (UIDNEXT)");
  if (!status) return status.error();
  const auto at = status->find("UIDNEXT ");
  std::uint32_t next = 0;
  std::size_t p = at + 8;
  if (at == std::string::npos || !read_number(*status, p, next)) {
    return Error{"imap.protocol", "STATUS gave no UIDNEXT", "imap"};
  }
  // libcurl 7.88 (Debian 12) counts a custom command's untagged responses against its 300 KB
  // limit on response headers, far more than their size: a FETCH of 17 untagged lines or a
  // SEARCH line of 4 KB already fails ("Too large response headers"). So the search goes by
  // windows of UIDs whose answer is a short line, from the lowest UID not yet seen processed.
  std::vector<std::uint32_t> uids;
  constexpr std::uint32_t window = 200;
  std::optional<std::uint32_t> lowest;
  for (std::uint32_t from = low_water_; from < next && uids.size() < most; from += window) {
    const std::uint32_t to = std::min<std::uint64_t>(static_cast<std::uint64_t>(from) + window - 1, next - 1);
    auto response = command("UID SEARCH UID " + std::to_string(from) + ":" + std::to_string(to) + " UNKEYWORD " + keyword);
    if (!response) return response.error();
    for (const auto uid : parse_search(*response)) {
      if (uid < from || uid > to) continue;  // "n:m" also matches the highest UID when above m
      if (!lowest) lowest = uid;
      uids.push_back(uid);
    }
  }
  // New mail comes with higher UIDs: the next poll starts at the lowest left, or at UIDNEXT.
  low_water_ = lowest ? *lowest : std::max(low_water_, next);
  if (uids.size() > most) uids.resize(most);
  return uids;
}

Result<std::vector<FetchedHeader>> ImapMailbox::headers(const std::vector<std::uint32_t>& uids,
                                                        std::size_t max_header) {
  std::vector<FetchedHeader> mails;
  for (const auto uid : uids) {
    // libcurl hands over a literal only for the FETCH its URL names (a custom FETCH loses it).
    auto header = command({}, "/;UID=" + std::to_string(uid) + ";SECTION=HEADER.FIELDS%20(FROM%20SUBJECT%20MESSAGE-ID)",
                          max_header);
    FetchedHeader mail{.uid = uid};
    if (!header) {
      if (header.error().code != "imap.too_large") return header.error();
      mail.too_large = true;
    } else {
      mail.header = std::move(*header);
    }
    mails.push_back(std::move(mail));
  }
  return mails;
}

Status ImapMailbox::mark(const std::vector<std::uint32_t>& uids, const std::string& keyword) {
  if (uids.empty()) return ok_status();
  auto response = command("UID STORE " + uid_set(uids) + " +FLAGS.SILENT (\\Seen " + keyword + ")");
  if (!response) return response.error();
  return ok_status();
}

}  // namespace callback::trigger_email
