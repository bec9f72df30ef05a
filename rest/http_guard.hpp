#pragma once
// callbackd's HTTP front door: every request's raw bytes are checked here before Pistache
// 0.0.5 parses them. Left to itself, Pistache answers a bad Content-Length with 500 and
// the C++ exception text, reserves and waits for any declared body, waits out its 60 s
// timeout on a line it cannot parse (no colon, bare LF, HTTP/0.9), drops the requests
// pipelined behind the first, and never percent-decodes a query. Here:
//   - each request head is checked line by line as it arrives (RFC 9112: CRLF lines,
//     "METHOD SP /target SP HTTP/1.x", "name: value" headers, one Content-Length of
//     digits); a bad one gets a 4xx with the API's error body at once, and the connection
//     is closed;
//   - a declared body over the route's limit gets 413 before any of it is read;
//   - Pistache is fed one whole request at a time, so pipelined requests are answered
//     each, in order;
//   - query names and values are percent-decoded, the one place every parameter passes.
//
//   class Handler final : public HttpGuard {
//    public:
//     HTTP_PROTOTYPE(Handler)
//     Handler() : HttpGuard([](std::string_view method, std::string_view path) { return 16384; }) {}
//     void onRequest(const Pistache::Http::Request&, Pistache::Http::ResponseWriter) override;
//   };
#include <callback/error.hpp>
#include <callback/http.hpp>

#include <pistache/http.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace callback::rest {

// callback/http.hpp's, where the triggers' form bodies are decoded too.
using callback::FormFields;
using callback::percent_decode;
using QueryParameters = FormFields;
inline Result<QueryParameters> decode_query(std::string_view query) { return decode_form(query); }

// Why a request is refused before it reaches a handler: the status and the API's error.
struct Rejection {
  Pistache::Http::Code status = Pistache::Http::Code::Bad_Request;
  Error error;
};

// The head of a request that passed the checks.
struct RequestHead {
  std::size_t preamble = 0;  // empty lines before the request line (RFC 9112 2.2), skipped
  std::size_t size = 0;      // bytes, up to and including the empty line ending the head
  std::string method;
  std::string target;          // as sent: "/v1/rates?lookup=%2B1001"
  QueryParameters query;       // decoded
  std::uint64_t content_length = 0;
  bool close = false;  // "Connection: close", or HTTP/1.0 without keep-alive
};

struct HeadIncomplete {};
using HeadCheck = std::variant<HeadIncomplete, RequestHead, Rejection>;

// The largest body a request may carry, by its method and path.
using BodyLimit = std::function<std::size_t(std::string_view method, std::string_view path)>;

// Longest request head taken (request line and headers).
inline constexpr std::size_t max_request_head = 8192;

// Checks the head of the request at the start of `bytes`: the head once it is whole,
// HeadIncomplete while it may still become valid, or a Rejection as soon as a line is
// known to be wrong (a line without a colon is refused when it ends, not at a timeout).
[[nodiscard]] HeadCheck check_request_head(std::string_view bytes, const BodyLimit& body_limit);

// A Pistache handler whose onRequest only ever sees requests that passed the checks
// above, with their query decoded. Derive from it instead of Pistache::Http::Handler.
class HttpGuard : public Pistache::Http::Handler {
 public:
  explicit HttpGuard(BodyLimit body_limit) : body_limit_(std::move(body_limit)) {}

 private:
  struct Connection;
  static Connection& connection_of(const std::shared_ptr<Pistache::Tcp::Peer>& peer);
  void onConnection(const std::shared_ptr<Pistache::Tcp::Peer>& peer) override;
  void onInput(const char* buffer, std::size_t length, const std::shared_ptr<Pistache::Tcp::Peer>& peer) override;

  // Hands Pistache what it may parse, request after request, while no answer is pending.
  void pump(const std::shared_ptr<Pistache::Tcp::Peer>& peer, Connection& connection);
  // Parses the request now whole in Pistache's parser and calls onRequest.
  void dispatch(const std::shared_ptr<Pistache::Tcp::Peer>& peer, Connection& connection);
  // Answers `rejection` with "Connection: close", then half-closes the connection.
  void reject(const std::shared_ptr<Pistache::Tcp::Peer>& peer, Connection& connection, const Rejection& rejection);
  // Pipelined requests wait while an answer is sent from another thread; Pistache tells
  // nothing when it is, so look again after `delay` (on the reactor thread).
  void recheck_after(const std::shared_ptr<Pistache::Tcp::Peer>& peer, std::chrono::milliseconds delay);

  BodyLimit body_limit_;
};

}  // namespace callback::rest
