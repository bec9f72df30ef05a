#include "ami_codec.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace callback::ami {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

std::string_view MessageView::get(std::string_view name) const noexcept {
  for (const auto& h : *headers_) {
    if (iequals(h.name, name)) return h.value;
  }
  return {};
}

bool MessageView::has(std::string_view name) const noexcept {
  for (const auto& h : *headers_) {
    if (iequals(h.name, name)) return true;
  }
  return false;
}

std::vector<std::string_view> MessageView::all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& h : *headers_) {
    if (iequals(h.name, name)) out.push_back(h.value);
  }
  return out;
}

Message::Message(const MessageView& view) : text_(view.text()) {
  headers_.reserve(view.headers().size());
  const char* base = view.text().data();
  for (const auto& h : view.headers()) {
    headers_.push_back({std::string_view(text_.data() + (h.name.data() - base), h.name.size()),
                        std::string_view(text_.data() + (h.value.data() - base), h.value.size())});
  }
}

Message& Message::operator=(const Message& other) {
  if (this != &other) *this = Message(other.view());
  return *this;
}

Status Parser::add_header(std::string_view line) {
  const void* colon_at = std::memchr(line.data(), ':', line.size());
  if (colon_at == nullptr || colon_at == line.data()) {
    std::string shown(line.substr(0, 40));
    for (auto& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    return Error{"ami_protocol", "malformed AMI line \"" + shown + "\" (no \"Name: value\")", {}};
  }
  const std::size_t colon = static_cast<std::size_t>(static_cast<const char*>(colon_at) - line.data());
  std::string_view value = line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (headers_.size() == limits_.max_headers) {
    return Error{"ami_protocol", "more than " + std::to_string(limits_.max_headers) + " headers in one message", {}};
  }
  headers_.push_back({line.substr(0, colon), value});
  return ok_status();
}

std::string md5_login_key(std::string_view challenge, std::string_view secret) {
  std::string text;
  text.reserve(challenge.size() + secret.size());
  text.append(challenge).append(secret);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_md5(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

bool Action::is_safe_value(std::string_view value) noexcept {
  return value.find_first_of("\r\n") == std::string_view::npos;
}

Action::Action(std::string_view name) {
  text_.reserve(256);
  add("Action", name);
}

Action& Action::add(std::string_view name, std::string_view value) {
  if (!is_safe_value(name) || !is_safe_value(value) || name.find(':') != std::string_view::npos) {
    throw std::logic_error("AMI header with CR, LF or ':' in its name would inject a second action");
  }
  text_.append(name).append(": ").append(value).append("\r\n");
  return *this;
}

}  // namespace callback::ami
