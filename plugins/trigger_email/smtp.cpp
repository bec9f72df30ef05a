#include "smtp.hpp"

#include <callback/secret.hpp>

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace callback::trigger_email {

namespace {

// RFC 5322's date: "Wed, 02 Dec 2026 04:10:00 +0000".
std::string mail_date(Timestamp now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[64];
  std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S +0000", &utc);
  return text;
}

bool ascii_text(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// A header's text with no way to end the header: control characters become spaces.
std::string one_line(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

// The body in base64, 76 characters a line.
std::string base64_lines(const std::string& text) {
  const std::string encoded = base64_encode(text);
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); i += 76) out += encoded.substr(i, 76) + "\r\n";
  return out;
}

struct Upload {
  const std::string& data;
  std::size_t offset = 0;
};

std::size_t read_upload(char* buffer, std::size_t size, std::size_t n, void* user) {
  auto* upload = static_cast<Upload*>(user);
  const std::size_t count = std::min(size * n, upload->data.size() - upload->offset);
  std::memcpy(buffer, upload->data.data() + upload->offset, count);
  upload->offset += count;
  return count;
}

}  // namespace

bool plain_message_id(const std::string& id) {
  if (id.empty() || id.size() > 250 || std::count(id.begin(), id.end(), '@') != 1) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '<' && c != '>'; });
}

std::string format_mail(const ReplyMail& mail, const std::string& from, Timestamp now, const std::string& message_id) {
  const std::string subject = one_line(mail.subject);
  std::string out = "Date: " + mail_date(now) + "\r\nFrom: <" + one_line(from) + ">\r\nTo: <" + one_line(mail.to) +
                    ">\r\nSubject: " +
                    (ascii_text(subject) ? subject : "=?UTF-8?B?" + base64_encode(subject) + "?=") +
                    "\r\nMessage-ID: <" + one_line(message_id) + ">\r\n";
  if (plain_message_id(mail.in_reply_to)) {
    out += "In-Reply-To: <" + mail.in_reply_to + ">\r\nReferences: <" + mail.in_reply_to + ">\r\n";
  }
  out += "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\n" +
         base64_lines(mail.body);
  return out;
}

bool send_mail(const SmtpOptions& smtp, const std::string& to, const std::string& data, std::string& why) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    why = "libcurl could not start";
    return false;
  }
  Upload upload{data};
  const std::string sender = "<" + smtp.from + ">";
  const std::string recipient = "<" + to + ">";
  curl_slist* recipients = curl_slist_append(nullptr, recipient.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, smtp.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_TRY));
  if (!smtp.username.empty()) {
    curl_easy_setopt(curl, CURLOPT_USERNAME, smtp.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, smtp.password.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_MAIL_FROM, sender.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, recipients);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_upload);
  curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
  curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(data.size()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10'000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(smtp.timeout.count() * 1000));
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(recipients);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    why = std::string("SMTP: ") + curl_easy_strerror(rc);
    return false;
  }
  return true;
}

}  // namespace callback::trigger_email
