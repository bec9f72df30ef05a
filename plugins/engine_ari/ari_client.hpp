#pragma once
// The Asterisk REST Interface transport for callback.engine.ari: REST calls over a small
// pool of HTTP/1.1 keep-alive connections (or, with rest_over_websocket, as RESTRequest
// frames on the WebSocket), and the event WebSocket of one Stasis application, framed
// here (RFC 6455, client side: masked frames, pings, fragments; every frame of a read
// handled in one go, the frames queued meanwhile written in one write). Everything runs on the io_context given (one thread, like the AMI
// engine); every reply is a Result, never an exception. What Asterisk sends is in
// tests/fixtures/asterisk/README.md ("ARI"): `Content-type: application/json`, 204 with
// no body for actions, 401 with WWW-Authenticate, {"message": "..."} on errors.
//
//   ari::Client client(io, {.username = "callback", .password = "secret"}, {},
//                      {.opened = [] { ... }, .event = [](const boost::json::object& e) { ... },
//                       .closed = [](const Error& why) { ... open() again later ... }});
//   client.open();  // GET /ari/events?app=callback-app&subscribeAll=false
//   client.request(http::verb::post,
//                  ari::with_query("/ari/channels", {{"endpoint", "Local/1001@phones"}, {"app", "callback-app"}}),
//                  [](Result<ari::Response> r) { if (!r) log(r.error().describe()); });
//
// Error codes (Error::field is "<METHOD> <target>" for REST calls):
//   ari.unreachable    connect refused or timed out, connection reset, closed without a reply
//   ari.unauthorized   401 (and 403)         ari.not_found      404, with Asterisk's message
//   ari.conflict       409                   ari.unprocessable  422
//   ari.bad_request    400, any other 4xx    ari.server         5xx
//   ari.protocol       a reply or frame we cannot read
//   ari.timeout        no reply within request_timeout (the WebSocket: nothing within event_idle_timeout)
//   ari.closed         close() was called while the request was in flight (or before it was made)
//   ari.invalid_target the target has a space or a control character (nothing is sent)
#include <callback/error.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace callback::ari {

struct Endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8088;
  std::string username, password;
  std::string app = "callback-app";
};

struct Response {
  unsigned status = 0;
  boost::json::value body;  // null when the reply had no body (204)
};

class Client {
 public:
  struct Options {
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds request_timeout{10000};  // from request() to the whole reply
    std::size_t max_connections = 4;                    // HTTP connections; the WebSocket is extra
    // The event WebSocket: Beast pings after half of this without a frame, and gives up
    // (closed: ari.timeout) when nothing at all came for this long. Asterisk answers pings.
    std::chrono::milliseconds event_idle_timeout{30000};
    // REST calls over the event WebSocket (ARI "REST over WebSocket": Asterisk 20.14, 21.9,
    // 22.4 and later): once the WebSocket is up a probe (GET asterisk/ping as a RESTRequest)
    // asks whether Asterisk takes them; from its RESTResponse on, calls go as text frames on
    // the WebSocket and their replies come back in its stream, between the events: no HTTP
    // connection, no request and reply each in its own system calls. Until then, and for an
    // Asterisk that never answers the probe (older ones ignore the frame), over HTTP. A call
    // in flight on a WebSocket that is lost fails with ari.unreachable (Asterisk may or may
    // not have done it), as one on a lost HTTP connection does.
    bool rest_over_websocket = false;
  };
  struct Handlers {
    std::function<void()> opened;                           // the event WebSocket is up (101 done)
    std::function<void(const boost::json::object&)> event;  // each event, parsed, in order
    // The WebSocket closed or failed (or never opened): once per open(). The owner decides
    // when to open() again. Not called for close().
    std::function<void(const Error&)> closed;
    std::function<void(const Error&)> malformed;  // a frame that is not a JSON object: skipped
  };

  Client(boost::asio::io_context& io, Endpoint endpoint, Options options, Handlers handlers);
  // Drops everything without calling any handler or request callback.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects the event WebSocket (Basic auth header, not api_key in the URL). Nothing if
  // it is already open or opening. Also undoes close() for request().
  void open();
  // The Stasis application the next open() subscribes to.
  void set_app(std::string app);
  // Closes the event WebSocket only (no `closed` handler): REST calls in flight and queued
  // go on, on their own connections. open() makes a new one. For an app another client
  // took over (ApplicationReplaced): a REST call is no less valid for that. Calls in flight
  // on the WebSocket itself (rest_over_websocket) are answered on it still: it is closed
  // once the last is.
  void drop_events();
  // Closes the WebSocket and every HTTP connection. Requests in flight or queued complete
  // with ari.closed before close() returns; requests made afterwards (until open()) too,
  // later. No other handler runs after close() returns.
  void close();
  // One REST call. `target` is the path and query ("/ari/channels/1795672242.76"); build
  // queries with with_query(). A non-empty `body` is sent as application/json. `done`
  // runs once, never inside request(). 2xx -> Response; other statuses -> the codes above.
  void request(boost::beast::http::verb method, std::string target, std::function<void(Result<Response>)> done,
               boost::json::object body = {});

  [[nodiscard]] bool is_open() const;  // the event WebSocket is up
  // REST calls go over the event WebSocket now (rest_over_websocket, and Asterisk answered the probe).
  [[nodiscard]] bool rest_on_websocket() const;
  // HTTP connections open or opening now (keep-alive reuse, for tests and status).
  [[nodiscard]] std::size_t connection_count() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Every byte but RFC 3986's unreserved ones (A-Z a-z 0-9 - . _ ~) percent-encoded: a path
// segment from Asterisk's data ("/ari/channels/" + encode(id)) or a query value.
[[nodiscard]] std::string encode(std::string_view text);

// "/ari/channels" + {{"endpoint", "Local/1001@phones"}, {"callerId", "\"Callback\" <1001>"}}
// -> "/ari/channels?endpoint=Local%2F1001%40phones&callerId=%22Callback%22%20%3C1001%3E"
// (names and values through encode(); '&' when `path` already has a query).
[[nodiscard]] std::string with_query(std::string path,
                                     std::initializer_list<std::pair<std::string_view, std::string_view>> params);

// `text` escaped (escape_control) and cut to about `limit` bytes, "..." marking the cut:
// how untrusted bytes go into an Error message.
[[nodiscard]] std::string quote_untrusted(std::string_view text, std::size_t limit = 200);

}  // namespace callback::ari
