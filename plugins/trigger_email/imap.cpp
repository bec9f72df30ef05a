#include "imap.hpp"

#include <curl/curl.h>

#include <charconv>

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

std::vector<FetchedHeader> parse_sizes(std::string_view response) {
  std::vector<FetchedHeader> out;
  for (auto at = response.find(" FETCH ("); at != std::string_view::npos; at = response.find(" FETCH (", at)) {
    at += 8;
    FetchedHeader mail;
    const auto end = response.find(')', at);
    const auto items = response.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (auto u = items.find("UID "); u != std::string_view::npos) {
      std::size_t p = u + 4;
      if (!read_number(items, p, mail.uid)) mail.uid = 0;
    }
    if (auto z = items.find("RFC822.SIZE "); z != std::string_view::npos) {
      std::size_t p = z + 12;
      if (!read_number(items, p, mail.size)) mail.size = 0;
    }
    if (mail.uid != 0) out.push_back(std::move(mail));
  }
  return out;
}

ImapMailbox::ImapMailbox(ImapOptions options) : options_(std::move(options)) {}

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

Result<std::vector<std::uint32_t>> ImapMailbox::unprocessed(const std::string& keyword) {
  // The mailbox stays selected between polls: NOOP makes the server look for new mail
  // (dovecot does not for a SEARCH alone).
  if (auto noop = command("NOOP"); !noop) return noop.error();
  auto response = command("UID SEARCH UNKEYWORD " + keyword);
  if (!response) return response.error();
  return parse_search(*response);
}

Result<std::vector<FetchedHeader>> ImapMailbox::headers(const std::vector<std::uint32_t>& uids,
                                                        std::size_t max_header) {
  if (uids.empty()) return std::vector<FetchedHeader>{};
  auto sizes = command("UID FETCH " + uid_set(uids) + " (UID RFC822.SIZE)");
  if (!sizes) return sizes.error();
  auto mails = parse_sizes(*sizes);
  for (auto& mail : mails) {
    // libcurl hands over a literal only for the FETCH its URL names (a custom FETCH loses it).
    auto header = command({}, "/;UID=" + std::to_string(mail.uid) + ";SECTION=HEADER.FIELDS%20(FROM%20SUBJECT%20MESSAGE-ID)",
                          max_header);
    if (!header) {
      if (header.error().code != "imap.too_large") return header.error();
      mail.header.clear();
      mail.too_large = true;
      continue;
    }
    mail.header = std::move(*header);
  }
  return mails;
}

Status ImapMailbox::mark(std::uint32_t uid, const std::string& keyword) {
  auto response = command("UID STORE " + std::to_string(uid) + " +FLAGS.SILENT (\\Seen " + keyword + ")");
  if (!response) return response.error();
  return ok_status();
}

}  // namespace callback::trigger_email
