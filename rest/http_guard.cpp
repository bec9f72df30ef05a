#include "http_guard.hpp"

#include <callback/json.hpp>

#include <boost/json/serialize.hpp>
#include <pistache/async.h>
#include <pistache/peer.h>
#include <pistache/transport.h>

#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <limits>

namespace callback::rest {

namespace {

using Pistache::Http::Code;

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

// RFC 9110 5.6.2: token = 1*tchar.
bool is_tchar(unsigned char c) {
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return std::isalnum(c) != 0 || extra.find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view text) {  // optional whitespace: SP and HTAB
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The methods Pistache 0.0.5 knows (pistache/http_defs.h); it refuses any other.
bool pistache_method(std::string_view method) {
  static constexpr std::array<std::string_view, 9> known{"OPTIONS", "GET",    "POST",  "HEAD",   "PUT",
                                                         "PATCH",   "DELETE", "TRACE", "CONNECT"};
  return std::find(known.begin(), known.end(), method) != known.end();
}

Rejection refuse(Code status, std::string code, std::string message, std::string field) {
  return Rejection{status, Error{std::move(code), std::move(message), std::move(field)}};
}

enum class LineEnd { whole, incomplete, bare };

// The line starting at `from`, ended by CRLF; a lone LF or CR is `bare`.
LineEnd next_line(std::string_view bytes, std::size_t from, std::string_view& line, std::size_t& after) {
  for (std::size_t i = from; i < bytes.size(); ++i) {
    if (bytes[i] == '\n') return LineEnd::bare;
    if (bytes[i] == '\r') {
      if (i + 1 == bytes.size()) return LineEnd::incomplete;
      if (bytes[i + 1] != '\n') return LineEnd::bare;
      line = bytes.substr(from, i - from);
      after = i + 2;
      return LineEnd::whole;
    }
  }
  return LineEnd::incomplete;
}

// "METHOD SP /target SP HTTP/1.1" into `head`, or what is wrong with it.
std::optional<Rejection> check_request_line(std::string_view line, RequestHead& head) {
  const auto first_space = line.find(' ');
  if (first_space == std::string_view::npos || !is_token(line.substr(0, first_space))) {
    return refuse(Code::Bad_Request, "invalid_request_line", "expected \"METHOD /path HTTP/1.1\"", "request_line");
  }
  head.method = line.substr(0, first_space);
  std::string_view rest = line.substr(first_space + 1);
  const auto second_space = rest.find(' ');
  const std::string_view target = rest.substr(0, second_space);
  if (target.empty() || target.front() != '/' ||
      !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return refuse(Code::Bad_Request, "invalid_target", "the request target must be a path starting with '/'",
                  "target");
  }
  head.target = target;
  if (second_space == std::string_view::npos) {  // "GET /": HTTP/0.9's request line
    return refuse(Code::HTTP_Version_Not_Supported, "unsupported_version",
                  "HTTP/0.9 is not supported: send \"METHOD /path HTTP/1.1\"", "version");
  }
  const std::string_view version = rest.substr(second_space + 1);
  const bool well_formed = version.size() == 8 && version.starts_with("HTTP/") && std::isdigit(version[5]) != 0 &&
                           version[6] == '.' && std::isdigit(version[7]) != 0;
  if (!well_formed) {
    return refuse(Code::Bad_Request, "invalid_request_line", "expected \"HTTP/1.1\" at the end of the request line",
                  "version");
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return refuse(Code::HTTP_Version_Not_Supported, "unsupported_version",
                  std::string(version) + " is not supported: use HTTP/1.1", "version");
  }
  head.close = version == "HTTP/1.0";  // unless it asks for keep-alive
  if (!pistache_method(head.method)) {
    return refuse(Code::Not_Implemented, "unknown_method", "unknown method \"" + head.method + "\"", "method");
  }
  if (const auto question = target.find('?'); question != std::string_view::npos) {
    auto query = decode_query(target.substr(question + 1));
    if (!query) return Rejection{Code::Bad_Request, query.error()};
    head.query = std::move(*query);
  }
  return std::nullopt;
}

// Content-Length: 1*DIGIT (RFC 9110 8.6), within 64 bits.
std::optional<std::uint64_t> parse_length(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (n > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    n = n * 10 + digit;
  }
  return n;
}

// One "name: value" line into `head`, or what is wrong with it.
std::optional<Rejection> check_header(std::string_view line, RequestHead& head, bool& seen_length,
                                      const BodyLimit& body_limit) {
  if (line.front() == ' ' || line.front() == '\t') {
    return refuse(Code::Bad_Request, "invalid_header", "a header line may not start with whitespace (line folding)",
                  "headers");
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
    return refuse(Code::Bad_Request, "invalid_header", "a header line must be \"Name: value\"", "headers");
  }
  const std::string_view name = line.substr(0, colon);
  const std::string_view value = trim(line.substr(colon + 1));
  if (std::any_of(value.begin(), value.end(), [](char c) { return c != '\t' && is_control(static_cast<unsigned char>(c)); })) {
    return refuse(Code::Bad_Request, "invalid_header", "control characters are not allowed in a header",
                  std::string(name));
  }
  if (iequals(name, "Content-Length")) {
    const auto length = parse_length(value);
    if (seen_length || !length) {
      return refuse(Code::Bad_Request, "invalid_content_length",
                    seen_length ? "only one Content-Length is allowed" : "must be the body's size in bytes (digits only)",
                    "Content-Length");
    }
    seen_length = true;
    head.content_length = *length;
    const std::string_view path = std::string_view(head.target).substr(0, head.target.find('?'));
    if (const std::size_t limit = body_limit(head.method, path); *length > limit) {
      return refuse(Code::Request_Entity_Too_Large, "body_too_large",
                    "the body is over " + std::to_string(limit) + " bytes", "body");
    }
  } else if (iequals(name, "Transfer-Encoding")) {
    return refuse(Code::Length_Required, "length_required",
                  "send the body with a Content-Length (Transfer-Encoding is not supported)", "Transfer-Encoding");
  } else if (iequals(name, "Connection")) {
    for (std::string_view rest = value; !rest.empty();) {
      const auto comma = rest.find(',');
      const std::string_view option = trim(rest.substr(0, comma));
      if (iequals(option, "close")) head.close = true;
      if (iequals(option, "keep-alive")) head.close = false;
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
  }
  // Pistache parses the headers it knows (Content-Type, Host, Accept, ...) as it reads the
  // request and throws on a value it cannot read ("Content-Type: applicaength: 19", found by
  // fuzz_query): said here, with the header's name, instead of "could not be parsed".
  if (!iequals(name, "Content-Length")) {
    auto& registry = Pistache::Http::Header::Registry::instance();
    const std::string key(name);
    if (registry.isRegistered(key)) {
      // Pistache hands the header its value with the trailing whitespace kept ("Host: x:13\t"
      // is an invalid port to it; found by fuzz_query): try that form and the trimmed one.
      std::string_view as_sent = line.substr(colon + 1);
      while (!as_sent.empty() && (as_sent.front() == ' ' || as_sent.front() == '\t')) as_sent.remove_prefix(1);
      for (const std::string_view form : {as_sent, value}) {
        try {
          registry.makeHeader(key)->parse(std::string(form));
        } catch (const std::exception&) {
          return refuse(Code::Bad_Request, "invalid_header", "is not a value this header can have", key);
        }
      }
    }
  }
  return std::nullopt;
}

}  // namespace

HeadCheck check_request_head(std::string_view bytes, const BodyLimit& body_limit) {
  RequestHead head;
  // RFC 9112 2.2: empty lines before the request line are ignored.
  std::size_t start = 0;
  while (bytes.substr(start).starts_with("\r\n")) start += 2;
  head.preamble = start;
  std::string_view line;
  std::size_t after = 0;
  switch (next_line(bytes, start, line, after)) {
    case LineEnd::bare:
      return refuse(Code::Bad_Request, "invalid_line_ending", "lines must end with CRLF", "request_line");
    case LineEnd::incomplete: {
      // Not a request at all (a TLS handshake, binary noise) is refused without waiting for a line end.
      const std::string_view so_far = bytes.substr(start);
      const std::string_view method = so_far.substr(0, so_far.find(' '));
      if (!std::all_of(method.begin(), method.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); })) {
        return refuse(Code::Bad_Request, "invalid_request_line", "expected \"METHOD /path HTTP/1.1\"", "request_line");
      }
      if (so_far.size() > max_request_head) {
        return refuse(Code::RequestURI_Too_Long, "target_too_long",
                      "the request line is over " + std::to_string(max_request_head) + " bytes", "target");
      }
      return HeadIncomplete{};
    }
    case LineEnd::whole:
      break;
  }
  if (after - start > max_request_head) {
    return refuse(Code::RequestURI_Too_Long, "target_too_long",
                  "the request line is over " + std::to_string(max_request_head) + " bytes", "target");
  }
  if (auto wrong = check_request_line(line, head)) return *wrong;
  bool seen_length = false;
  for (std::size_t from = after;; from = after) {
    const LineEnd end = next_line(bytes, from, line, after);
    const std::size_t used = (end == LineEnd::whole ? after : bytes.size()) - start;
    if (used > max_request_head) {
      return refuse(Code::Request_Header_Fields_Too_Large, "headers_too_large",
                    "the request head is over " + std::to_string(max_request_head) + " bytes", "headers");
    }
    if (end == LineEnd::bare) {
      return refuse(Code::Bad_Request, "invalid_line_ending", "lines must end with CRLF", "headers");
    }
    if (end == LineEnd::incomplete) return HeadIncomplete{};
    if (line.empty()) break;
    if (auto wrong = check_header(line, head, seen_length, body_limit)) return *wrong;
  }
  head.size = after;
  return head;
}

// --- the handler ---------------------------------------------------------------------------

namespace {
constexpr const char* connection_data = "callback.http_guard";
}

struct HttpGuard::Connection {
  std::string pending;            // bytes not handed to Pistache yet
  std::uint64_t body_left = 0;    // of the request whose head Pistache holds
  bool in_request = false;        // Pistache holds a head and waits for body_left more bytes
  bool answer_pending = false;    // onRequest returned unanswered: it is answered from another thread
  bool answer_seen = false;       // ...and the peer was seen answered once
  bool closing = false;           // refused, or asked to close: later bytes are dropped
  bool close_after = false;       // the request Pistache holds asked to close
  QueryParameters query;          // of that request, decoded
  std::chrono::milliseconds recheck{1};
};

void HttpGuard::onConnection(const std::shared_ptr<Pistache::Tcp::Peer>& peer) {
  // What Pistache::Http::Handler::onConnection does (private there), and this guard's state.
  peer->putData(ParserData, std::make_shared<Pistache::Http::RequestParser>(getMaxRequestSize()));
  peer->putData(connection_data, std::make_shared<Connection>());
}

HttpGuard::Connection& HttpGuard::connection_of(const std::shared_ptr<Pistache::Tcp::Peer>& peer) {
  return *std::static_pointer_cast<Connection>(peer->getData(connection_data));
}

void HttpGuard::onInput(const char* buffer, std::size_t length, const std::shared_ptr<Pistache::Tcp::Peer>& peer) {
  Connection& connection = connection_of(peer);
  if (connection.closing) return;
  connection.pending.append(buffer, length);
  if (connection.answer_pending && connection.pending.size() > getMaxRequestSize()) {
    return reject(peer, connection,
                  refuse(Code::Request_Entity_Too_Large, "body_too_large",
                         "more than " + std::to_string(getMaxRequestSize()) + " bytes sent ahead of the answers", "body"));
  }
  pump(peer, connection);
}

void HttpGuard::pump(const std::shared_ptr<Pistache::Tcp::Peer>& peer, Connection& connection) {
  auto parser = getParser(peer);
  while (!connection.closing) {
    if (connection.answer_pending) {
      if (connection.pending.empty()) return;  // nothing waits behind it: the next bytes look again
      // Pistache marks the peer idle just before it queues the answer's bytes, so the
      // peer must be seen idle twice, a tick apart, before the next answer may follow.
      const bool answered = peer->isIdle();
      if (!answered || !connection.answer_seen) {
        connection.answer_seen = answered;
        const auto delay = answered ? std::chrono::milliseconds{1} : connection.recheck;
        connection.recheck = std::min(connection.recheck * 2, std::chrono::milliseconds{50});
        return recheck_after(peer, delay);
      }
      connection.answer_pending = false;
    }
    if (connection.in_request) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(connection.body_left, connection.pending.size()));
      if (n > 0) {
        if (!parser->feed(connection.pending.data(), n)) {
          return reject(peer, connection,
                        refuse(Code::Request_Entity_Too_Large, "body_too_large", "the request is too large", "body"));
        }
        connection.pending.erase(0, n);
        connection.body_left -= n;
      }
      if (connection.body_left > 0) return;
      connection.in_request = false;
      dispatch(peer, connection);
      continue;
    }
    if (connection.pending.empty()) return;
    HeadCheck check = check_request_head(connection.pending, body_limit_);
    if (std::holds_alternative<HeadIncomplete>(check)) return;
    if (auto* rejection = std::get_if<Rejection>(&check)) return reject(peer, connection, *rejection);
    auto& head = std::get<RequestHead>(check);
    if (!parser->feed(connection.pending.data() + head.preamble, head.size - head.preamble)) {
      return reject(peer, connection,
                    refuse(Code::Request_Header_Fields_Too_Large, "headers_too_large", "the head is too large", "headers"));
    }
    connection.pending.erase(0, head.size);
    connection.body_left = head.content_length;
    connection.in_request = true;
    connection.close_after = head.close;
    connection.query = std::move(head.query);
  }
}

void HttpGuard::dispatch(const std::shared_ptr<Pistache::Tcp::Peer>& peer, Connection& connection) {
  auto parser = getParser(peer);
  auto& request = parser->request;
  Pistache::Http::Private::State state{};
  try {
    state = parser->parse();
  } catch (const std::exception&) {
    state = Pistache::Http::Private::State::Again;
  }
  if (state != Pistache::Http::Private::State::Done) {  // the checks above let nothing through that it refuses
    return reject(peer, connection,
                  refuse(Code::Bad_Request, "invalid_request", "the request could not be parsed", "request"));
  }
  // The parser owns the request (not const); its query becomes the decoded one.
  auto& query = const_cast<Pistache::Http::Uri::Query&>(request.query());
  query.clear();
  for (auto& [name, value] : connection.query) query.add(std::move(name), std::move(value));
  connection.query.clear();
  // As Pistache::Http::Handler::onInput does with a whole request.
  Pistache::Http::ResponseWriter response(request.version(), transport(), this, peer);
  request.copyAddress(peer->address());
  auto asked = request.headers().tryGet<Pistache::Http::Header::Connection>();
  response.headers().add<Pistache::Http::Header::Connection>(asked ? asked->control()
                                                                   : Pistache::Http::ConnectionControl::Close);
  peer->setIdle(false);
  try {
    onRequest(request, std::move(response));
  } catch (const std::exception&) {
    // The handler's own failure: answered 500 without its text, like any other.
    Pistache::Http::ResponseWriter failed(request.version(), transport(), this, peer);
    failed.headers().add<Pistache::Http::Header::ContentType>(Pistache::Http::Mime::MediaType("application/json"));
    failed.send(
        Code::Internal_Server_Error,
        boost::json::serialize(error_body(Error{"internal", "the request failed", {}}.as(ErrorKind::internal))));
  }
  parser->reset();
  connection.answer_pending = !peer->isIdle();
  connection.answer_seen = false;
  connection.recheck = std::chrono::milliseconds{1};
  if (connection.close_after) {
    connection.closing = true;
    connection.pending.clear();
  }
}

void HttpGuard::reject(const std::shared_ptr<Pistache::Tcp::Peer>& peer, Connection& connection,
                       const Rejection& rejection) {
  connection.closing = true;
  connection.pending.clear();
  connection.in_request = false;
  getParser(peer)->reset();
  Pistache::Http::ResponseWriter response(Pistache::Http::Version::Http11, transport(), this, peer);
  response.headers().add<Pistache::Http::Header::Connection>(Pistache::Http::ConnectionControl::Close);
  response.headers().add<Pistache::Http::Header::ContentType>(Pistache::Http::Mime::MediaType("application/json"));
  // Pistache 0.0.5 never closes a connection after "Connection: close". Once the answer is
  // written, half-close: the client reads it whole, then the end; Pistache drops the
  // connection when the client closes its side (or at the keep-alive timeout). Bytes
  // still arriving are read and dropped, so no reset destroys the answer in flight.
  std::weak_ptr<Pistache::Tcp::Peer> weak = peer;
  auto half_close = [weak] {
    if (auto alive = weak.lock()) ::shutdown(alive->fd(), SHUT_WR);
  };
  response.send(rejection.status, boost::json::serialize(error_body(rejection.error)))
      .then([half_close](ssize_t) { half_close(); }, [half_close](std::exception_ptr) { half_close(); });
}

void HttpGuard::recheck_after(const std::shared_ptr<Pistache::Tcp::Peer>& peer, std::chrono::milliseconds delay) {
  const int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer < 0) return;  // out of descriptors: the client's next bytes look again
  std::weak_ptr<Pistache::Tcp::Peer> weak = peer;
  // Armed on the reactor thread and fired there, so the continuation runs there too.
  Pistache::Async::Promise<std::uint64_t> fired([&](Pistache::Async::Deferred<std::uint64_t> deferred) {
    transport()->armTimer(timer, delay, std::move(deferred));
  });
  fired.then(
      [this, weak, timer](std::uint64_t) {
        // Pump before closing: a timer it arms gets another descriptor number than this
        // one, which Pistache still lists until this continuation returns.
        if (auto alive = weak.lock()) pump(alive, connection_of(alive));
        ::close(timer);
      },
      [timer](std::exception_ptr) { ::close(timer); });
}

}  // namespace callback::rest
