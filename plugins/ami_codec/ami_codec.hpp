#pragma once
// The Asterisk Manager Interface wire format, shared by the AMI engine and the Asterisk
// fake. AMI is text: a banner line ("Asterisk Call Manager/12.0.0\r\n", with no blank
// line after it), then messages of "Name: value\r\n" lines, each message ended by an
// empty line. The parser never trusts TCP boundaries: feed it whatever arrived, in any
// pieces, and it calls back once per complete message. Sizes are bounded, so a peer that
// sends garbage or never ends a line is an error, not unbounded memory.
//
//   ami::Parser parser;
//   auto ok = parser.feed(bytes, [&](const ami::MessageView& m) {
//     if (m.is_event() && m.event() == "Hangup") handle(m.get("Uniqueid"), m.get("Cause"));
//   });
//   if (!ok) drop_connection(ok.error().message);
//
//   std::string wire = ami::Action("Originate").add("ActionID", "cb-1").add("Async", "true").str();
#include <callback/error.hpp>

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callback::ami {

struct Header {
  std::string_view name;
  std::string_view value;
};

// Case-insensitive ASCII comparison (AMI header names are case-insensitive).
[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;

// A message whose text lives elsewhere (the parser's buffer, valid during the callback,
// or an owning Message).
class MessageView {
 public:
  [[nodiscard]] const std::vector<Header>& headers() const noexcept { return *headers_; }
  // The first header of that name, or "" when absent.
  [[nodiscard]] std::string_view get(std::string_view name) const noexcept;
  [[nodiscard]] bool has(std::string_view name) const noexcept;
  [[nodiscard]] std::vector<std::string_view> all(std::string_view name) const;  // e.g. every Output line

  [[nodiscard]] bool is_event() const noexcept { return first_is("Event"); }
  [[nodiscard]] bool is_response() const noexcept { return first_is("Response"); }
  [[nodiscard]] std::string_view event() const noexcept { return is_event() ? headers().front().value : ""; }
  [[nodiscard]] std::string_view response() const noexcept { return is_response() ? headers().front().value : ""; }
  [[nodiscard]] std::string_view action_id() const noexcept { return get("ActionID"); }
  [[nodiscard]] std::string_view text() const noexcept { return text_; }  // the raw bytes, with the blank line

  MessageView(const std::vector<Header>* headers, std::string_view text) : headers_(headers), text_(text) {}

 private:
  [[nodiscard]] bool first_is(std::string_view name) const noexcept {
    return !headers_->empty() && iequals(headers_->front().name, name);
  }
  const std::vector<Header>* headers_;
  std::string_view text_;
};

// A message that owns its bytes (to keep one beyond the parser callback).
class Message {
 public:
  explicit Message(const MessageView& view);
  Message(const Message& other) : Message(other.view()) {}
  Message& operator=(const Message& other);
  Message(Message&&) noexcept = default;
  Message& operator=(Message&&) noexcept = default;
  [[nodiscard]] MessageView view() const { return MessageView(&headers_, text_); }
  [[nodiscard]] std::string_view get(std::string_view name) const noexcept { return view().get(name); }

 private:
  std::string text_;
  std::vector<Header> headers_;
};

struct Limits {
  std::size_t max_line = 16 * 1024;         // one header line
  std::size_t max_message = 4 * 1024 * 1024;  // one message (Command output can be long)
  std::size_t max_headers = 100'000;
};

class Parser {
 public:
  explicit Parser(Limits limits = {}) : limits_(limits) {}

  // The banner, once seen ("Asterisk Call Manager/12.0.0"); empty before.
  [[nodiscard]] const std::string& banner() const noexcept { return banner_; }

  // Parses what arrived; calls on_message for each complete message. After an Error the
  // parser is spent: drop the connection and start a new Parser.
  template <class OnMessage>
  Status feed(std::string_view data, OnMessage&& on_message);

  void reset() {
    buffer_.clear();
    banner_.clear();
    failed_ = false;
  }

 private:
  // Parses complete messages at the front of `data`; returns how many bytes were used,
  // or an Error. Messages are delivered through `deliver`.
  template <class OnMessage>
  Result<std::size_t> consume(std::string_view data, OnMessage& on_message);
  Status add_header(std::string_view line);

  Limits limits_;
  std::string buffer_;  // an incomplete message carried over between feeds
  std::string banner_;
  std::vector<Header> headers_;
  bool failed_ = false;
};

// The Key of an MD5 Login: hex(md5(challenge + secret)) (Asterisk's manager.c).
[[nodiscard]] std::string md5_login_key(std::string_view challenge, std::string_view secret);

// An action to send. Values come from our own validated data, but a CR or LF in one
// would let it inject a second action, so add() refuses them (a bug: std::logic_error).
class Action {
 public:
  explicit Action(std::string_view name);
  Action& add(std::string_view name, std::string_view value);
  [[nodiscard]] std::string str() const { return text_ + "\r\n"; }
  [[nodiscard]] static bool is_safe_value(std::string_view value) noexcept;

 private:
  std::string text_;
};

// --- implementation of the template ----------------------------------------------------

template <class OnMessage>
Status Parser::feed(std::string_view data, OnMessage&& on_message) {
  if (failed_) return Error{"ami_protocol", "parser used after a protocol error", {}};
  if (buffer_.empty()) {
    // Fast path: parse straight from the caller's bytes, keep only the incomplete tail.
    auto used = consume(data, on_message);
    if (!used) {
      failed_ = true;
      return used.error();
    }
    buffer_.assign(data.substr(*used));
  } else {
    buffer_.append(data);
    auto used = consume(buffer_, on_message);
    if (!used) {
      failed_ = true;
      return used.error();
    }
    buffer_.erase(0, *used);
  }
  if (buffer_.size() > limits_.max_message) {
    failed_ = true;
    return Error{"ami_protocol", "message longer than " + std::to_string(limits_.max_message) + " bytes", {}};
  }
  return ok_status();
}

template <class OnMessage>
Result<std::size_t> Parser::consume(std::string_view data, OnMessage& on_message) {
  std::size_t pos = 0;
  if (banner_.empty()) {
    const auto eol = data.find('\n');
    if (eol == std::string_view::npos) {
      if (data.size() > limits_.max_line) return Error{"ami_protocol", "no AMI banner line", {}};
      return std::size_t{0};
    }
    std::string_view line = data.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // As for any line, whether it came in one piece or in many (found by tests/fuzz/fuzz_ami).
    if (line.size() > limits_.max_line) return Error{"ami_protocol", "no AMI banner line", {}};
    if (line.rfind("Asterisk Call Manager/", 0) != 0) {
      return Error{"ami_protocol", "peer is not an Asterisk manager (banner \"" +
                                       std::string(line.substr(0, 60)) + "\")", {}};
    }
    banner_.assign(line);
    pos = eol + 1;
  }
  while (pos < data.size()) {
    // One pass: split lines (LF, optional CR) into headers until the empty line that
    // ends the message. An incomplete message is dropped and parsed again next time.
    headers_.clear();
    std::size_t line_start = pos;
    std::size_t end = std::string_view::npos;
    while (true) {
      const void* found = std::memchr(data.data() + line_start, '\n', data.size() - line_start);
      if (found == nullptr) {
        if (data.size() - line_start > limits_.max_line) {
          return Error{"ami_protocol", "header line longer than " + std::to_string(limits_.max_line) + " bytes", {}};
        }
        if (data.size() - pos > limits_.max_message) {
          return Error{"ami_protocol", "message longer than " + std::to_string(limits_.max_message) + " bytes", {}};
        }
        return pos;  // incomplete: wait for more
      }
      const std::size_t eol = static_cast<std::size_t>(static_cast<const char*>(found) - data.data());
      std::size_t length = eol - line_start;
      if (length > limits_.max_line) {
        return Error{"ami_protocol", "header line longer than " + std::to_string(limits_.max_line) + " bytes", {}};
      }
      if (length > 0 && data[eol - 1] == '\r') --length;
      if (length == 0) {
        end = eol + 1;
        break;
      }
      if (auto ok = add_header(data.substr(line_start, length)); !ok) return ok.error();
      line_start = eol + 1;
    }
    const std::string_view message = data.substr(pos, end - pos);
    if (message.size() > limits_.max_message) {
      return Error{"ami_protocol", "message longer than " + std::to_string(limits_.max_message) + " bytes", {}};
    }
    pos = end;
    if (headers_.empty()) continue;  // a stray blank line between messages
    on_message(MessageView(&headers_, message));
  }
  return pos;
}

}  // namespace callback::ami
