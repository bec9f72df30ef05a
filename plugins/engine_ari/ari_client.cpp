#include "ari_client.hpp"

#include <callback/context.hpp>
#include <callback/secret.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

namespace callback::ari {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// GET /ari/channels with a few hundred channels is a few hundred KB; anything near these
// limits is not Asterisk talking.
constexpr std::uint64_t reply_body_limit = 16 * 1024 * 1024;
constexpr std::uint64_t event_frame_limit = 4 * 1024 * 1024;


// "127.0.0.1:8088" (what Asterisk's own recordings show), "[::1]:8088" for IPv6.
std::string host_header(const Endpoint& endpoint) {
  const bool v6 = endpoint.host.find(':') != std::string::npos;
  return (v6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

std::string where(http::verb method, std::string_view target) {
  std::string text(http::to_string(method));
  text += ' ';
  text += target;
  return text;
}

// Asterisk's error bodies are {"message":"Channel not found"}, except the 500 of an
// originate to a missing technology: {"error":"Allocation failed"} (fixtures: ari-errors).
std::optional<std::string> asterisk_message(std::string_view body) {
  error_code ec;
  auto parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) return std::nullopt;
  for (const char* key : {"message", "error"}) {
    const auto* message = parsed.as_object().if_contains(key);
    if (message != nullptr && message->is_string()) return std::string(message->as_string());
  }
  return std::nullopt;
}

std::string code_for_status(unsigned status) {
  switch (status) {
    case 401:
    case 403: return "ari.unauthorized";
    case 404: return "ari.not_found";
    case 409: return "ari.conflict";
    case 422: return "ari.unprocessable";
    default: break;
  }
  if (status >= 500 && status < 600) return "ari.server";
  if (status >= 400 && status < 500) return "ari.bad_request";
  return "ari.protocol";  // 1xx/3xx: ARI never answers a REST call with those
}

// "HTTP 404 Not Found" plus Asterisk's message or the start of the body, if any.
std::string status_text(unsigned status, std::string_view reason, std::string_view body) {
  std::string text = "HTTP " + std::to_string(status);
  if (!reason.empty()) text += " " + quote_untrusted(reason, 80);
  if (auto message = asterisk_message(body)) {
    text += ": " + quote_untrusted(*message);
  } else if (!body.empty()) {
    text += ": " + quote_untrusted(body);
  }
  return text;
}

std::string status_text(const http::response<http::string_body>& reply) {
  return status_text(reply.result_int(), reply.reason(), reply.body());
}

// A reply, from HTTP or a RESTResponse on the WebSocket: its status, reason and body text.
Result<Response> to_result(unsigned status, std::string_view reason, std::string_view body, const std::string& field) {
  if (status >= 200 && status < 300) {
    Response response{status, nullptr};
    if (body.empty()) return response;  // 204 No Content, Content-Length: 0
    error_code ec;
    response.body = json::parse(body, ec);
    if (ec) return Error{"ari.protocol", "the reply is not JSON (" + ec.message() + "): " + quote_untrusted(body), field};
    return response;
  }
  // The API's own errors carry Asterisk's message as it is ("Channel not found").
  if (auto message = asterisk_message(body); message && status >= 400) {
    return Error{code_for_status(status), quote_untrusted(*message), field};
  }
  return Error{code_for_status(status), status_text(status, reason, body), field};
}

// Resolves (unless the host is an address) and connects within `timeout`; `done(ec)`.
// The caller keeps `stream` and `resolver` alive through `done`'s captures.
template <class Done>
void connect_stream(const Endpoint& endpoint, std::chrono::milliseconds timeout, beast::tcp_stream& stream,
                    tcp::resolver& resolver, Done done) {
  error_code ec;
  const auto address = asio::ip::make_address(endpoint.host, ec);
  stream.expires_after(timeout);
  if (!ec) {
    stream.async_connect(tcp::endpoint(address, endpoint.port), std::move(done));
    return;
  }
  resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                         [&stream, done = std::move(done)](error_code resolved, const tcp::resolver::results_type& results) mutable {
                           if (resolved) return done(resolved);
                           stream.async_connect(results, [done = std::move(done)](error_code connected, const tcp::endpoint&) mutable {
                             done(connected);
                           });
                         });
}

bool valid_target(std::string_view target) {
  return !target.empty() && target.front() == '/' &&
         std::none_of(target.begin(), target.end(), [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7F; });
}

std::string connect_failure(const Endpoint& endpoint, error_code ec, std::chrono::milliseconds timeout) {
  const std::string address = host_header(endpoint);
  if (ec == beast::error::timeout) {
    return "cannot connect to ARI at " + address + ": no answer within " + std::to_string(timeout.count()) + " ms";
  }
  return "cannot connect to ARI at " + address + ": " + ec.message();
}

using steady = std::chrono::steady_clock;

struct Call {
  Call(http::verb method_, std::string target_, std::string body_, std::function<void(Result<Response>)> done_,
       steady::time_point deadline_)
      : method(method_), target(std::move(target_)), body(std::move(body_)), done(std::move(done_)), deadline(deadline_) {}
  http::verb method;
  std::string target;
  std::string body;  // JSON text, or empty
  std::function<void(Result<Response>)> done;
  steady::time_point deadline;  // request_timeout, from request() on
  int attempts = 0;             // sends; a stale keep-alive connection earns one more
  bool fresh_only = false;      // that one more: on a new connection (the other idle ones are as old)
  bool finished = false;
  std::uint64_t ws_id = 0;      // its request_id, while it is on the event WebSocket
  std::uint64_t ws_stream = 0;  // that WebSocket's serial
};

// One HTTP connection of the pool. Async operations hold it by shared_ptr; the Client
// only by its list, so a dropped connection lives until its last handler has run.
struct Connection {
  explicit Connection(asio::io_context& io) : stream(io), resolver(io) {}
  enum class State { connecting, idle, busy, dead };
  beast::tcp_stream stream;
  tcp::resolver resolver;
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  std::optional<http::response_parser<http::string_body>> parser;
  std::shared_ptr<Call> call;  // the one being served (or connected for)
  State state = State::connecting;
  bool reused = false;         // it has answered a request before
  std::uint64_t idle_epoch = 0;
  steady::time_point idle_since;
  bool watched = false;  // idle, with a wait for Asterisk closing it
};

// The event WebSocket of one open().
struct EventStream {
  explicit EventStream(asio::io_context& io) : ws(io), resolver(io) {}
  enum class State { connecting, open, done };
  websocket::stream<beast::tcp_stream> ws;
  tcp::resolver resolver;
  beast::flat_buffer buffer;
  websocket::response_type handshake_reply;
  State state = State::connecting;
  std::uint64_t serial = 0;
  // REST over the WebSocket: Asterisk answered the probe; RESTRequest frames not yet
  // written (the front one is being written when `writing`), each with its request_id.
  bool rest_ready = false;
  bool writing = false;
  std::deque<std::pair<std::string, std::uint64_t>> outbox;  // 0: the probe
};

constexpr std::string_view probe_id = "callback-probe";

// {"type":"RESTRequest","request_id":"17","method":"POST","uri":"channels?endpoint=...",
//  "content_type":"application/json","message_body":"{...}"}: the target without "/ari/".
std::string rest_request_frame(std::string_view id, std::string_view method, std::string_view uri, std::string_view body) {
  json::object frame;
  frame["type"] = "RESTRequest";
  frame["request_id"] = id;
  frame["method"] = method;
  frame["uri"] = uri;
  if (!body.empty()) {
    frame["content_type"] = "application/json";
    frame["message_body"] = body;
  }
  return json::serialize(frame);
}

}  // namespace

std::string quote_untrusted(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return escape_control(text);
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) --cut;  // not inside a UTF-8 character
  return escape_control(text.substr(0, cut)) + "...";
}

std::string encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4U];
      out += hex[c & 15U];
    }
  }
  return out;
}

std::string with_query(std::string path,
                       std::initializer_list<std::pair<std::string_view, std::string_view>> params) {
  char separator = path.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [name, value] : params) {
    path += separator;
    separator = '&';
    path += encode(name);
    path += '=';
    path += encode(value);
  }
  return path;
}

struct Client::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_, Endpoint endpoint_, Options options_, Handlers handlers_)
      : io(io_),
        endpoint(std::move(endpoint_)),
        options(options_),
        handlers(std::move(handlers_)),
        host(host_header(endpoint)),
        authorization("Basic " + base64_encode(endpoint.username + ":" + endpoint.password)),
        deadline_timer(io_),
        idle_timer(io_) {}

  asio::io_context& io;
  Endpoint endpoint;
  Options options;
  Handlers handlers;
  std::string host;
  std::string authorization;
  bool closed = false;  // close() and no open() since
  std::deque<std::shared_ptr<Call>> queue;
  std::vector<std::shared_ptr<Connection>> connections;
  std::shared_ptr<EventStream> events;
  // Request deadlines without a timer each: every call has the same timeout, so calls in
  // the order made are in deadline order; one timer waits for the oldest unfinished one.
  std::deque<std::weak_ptr<Call>> by_deadline;
  asio::steady_timer deadline_timer;
  bool deadline_armed = false;
  // Idle keep-alive connections are watched for Asterisk closing them only once idle for
  // idle_watch_after: under load a connection is reused long before, and a wait armed and
  // cancelled for every request costs a system call each time. A connection closed before
  // it is watched is found stale when next used, and its request goes again on a new one.
  static constexpr std::chrono::milliseconds idle_watch_after{1000};
  asio::steady_timer idle_timer;
  bool idle_armed = false;
  // Calls sent (or queued to be sent) on the event WebSocket, by request_id.
  std::unordered_map<std::uint64_t, std::shared_ptr<Call>> ws_calls;
  std::uint64_t ws_serial = 0, ws_next_id = 0;

  // --- REST ------------------------------------------------------------------------

  void request(http::verb method, std::string target, std::function<void(Result<Response>)> done, json::object body) {
    std::optional<Error> refused;
    if (closed) {
      refused = Error{"ari.closed", "the ARI client is closed", where(method, target)};
    } else if (!valid_target(target)) {
      // An id from Asterisk pasted into a path unencoded could otherwise forge a header.
      refused = Error{"ari.invalid_target", "the request target must start with '/' and hold no space or control character (ari::encode)",
                      quote_untrusted(where(method, target))};
    }
    if (refused) {
      asio::post(io, [done = std::move(done), why = std::move(*refused)] {
        if (done) done(why);
      });
      return;
    }
    auto call = std::make_shared<Call>(method, std::move(target), body.empty() ? std::string() : json::serialize(body),
                                       std::move(done), steady::now() + options.request_timeout);
    by_deadline.push_back(call);
    arm_deadline();
    if (events && events->rest_ready && call->target.starts_with("/ari/")) {
      send_on_websocket(events, call);
      return;
    }
    queue.push_back(std::move(call));
    dispatch();
  }

  // --- REST over the event WebSocket -----------------------------------------------

  void send_on_websocket(const std::shared_ptr<EventStream>& stream, const std::shared_ptr<Call>& call) {
    ++call->attempts;
    call->ws_id = ++ws_next_id;
    call->ws_stream = stream->serial;
    ws_calls.emplace(call->ws_id, call);
    stream->outbox.emplace_back(rest_request_frame(std::to_string(call->ws_id), http::to_string(call->method),
                                                   std::string_view(call->target).substr(5), call->body),
                                call->ws_id);
    write_outbox(stream);
  }

  void write_outbox(const std::shared_ptr<EventStream>& stream) {
    if (stream->writing || stream->outbox.empty() || stream->state != EventStream::State::open) return;
    stream->writing = true;
    stream->ws.text(true);
    stream->ws.async_write(asio::buffer(stream->outbox.front().first), [weak = weak_from_this(), stream](error_code ec, std::size_t) {
      auto self = weak.lock();
      if (!self) return;
      stream->writing = false;
      if (self->events != stream) return;
      if (ec) {
        self->lose_events(stream, events_error(*stream, ec, "writing to the event WebSocket failed", self->options.event_idle_timeout));
        return;
      }
      stream->outbox.pop_front();
      self->write_outbox(stream);
    });
  }

  // A RESTResponse: {"type":"RESTResponse","transaction_id":"","request_id":"17",
  // "status_code":204,"reason_phrase":"No Content","uri":"...","content_type":...,
  // "message_body":"<the reply's JSON as a string>", ...}.
  void on_rest_response(EventStream& stream, const json::object& frame) {
    const auto text = [&](std::string_view key) -> std::string_view {
      const auto* v = frame.if_contains(key);
      return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
    };
    const auto* code = frame.if_contains("status_code");
    const unsigned status = code != nullptr && code->is_int64() && code->as_int64() > 0 && code->as_int64() < 1000
                                ? static_cast<unsigned>(code->as_int64())
                                : 0;
    const std::string_view id = text("request_id");
    if (id == probe_id) {
      stream.rest_ready = status == 200;
      return;
    }
    std::uint64_t number = 0;
    const auto parsed = std::from_chars(id.data(), id.data() + id.size(), number);
    if (parsed.ec != std::errc() || parsed.ptr != id.data() + id.size()) return;  // not one of ours
    const auto found = ws_calls.find(number);
    if (found == ws_calls.end() || found->second->ws_stream != stream.serial) return;  // expired, or not ours
    auto call = std::move(found->second);
    ws_calls.erase(found);
    const std::string field = where(call->method, call->target);
    if (status == 0) {
      finish(call, Error{"ari.protocol", "a RESTResponse without a status_code", field});
      return;
    }
    finish(call, to_result(status, text("reason_phrase"), text("message_body"), field));
  }

  // `stream` is gone. Calls not yet written go over HTTP; those written fail: Asterisk may
  // have done them or not. Nothing is left on the stream. A callback may close() the
  // client or destroy it: each call is looked up again before it is finished.
  void release_websocket_calls(EventStream& stream) {
    if (closed) {  // shutdown() ends every call in ws_calls
      stream.outbox.clear();
      return;
    }
    if (stream.outbox.empty() && ws_calls.empty()) return;
    // The frame being written may have reached Asterisk; the ones behind it have not.
    for (std::size_t i = stream.writing ? 1 : 0; i < stream.outbox.size(); ++i) {
      const auto found = ws_calls.find(stream.outbox[i].second);
      if (found == ws_calls.end()) continue;  // the probe, or expired
      auto call = std::move(found->second);
      ws_calls.erase(found);
      call->ws_id = 0;
      call->attempts = 0;
      queue.push_back(std::move(call));
    }
    stream.outbox.clear();
    std::vector<std::uint64_t> sent;
    for (const auto& [id, call] : ws_calls) {
      if (call->ws_stream == stream.serial) sent.push_back(id);
    }
    std::sort(sent.begin(), sent.end());  // in the order made
    dispatch();
    auto self = shared_from_this();  // through the callbacks
    for (const auto& id : sent) {
      const auto found = ws_calls.find(id);
      if (found == ws_calls.end() || closed) continue;
      auto call = std::move(found->second);
      ws_calls.erase(found);
      finish(call, Error{"ari.unreachable", "the event WebSocket was lost before Asterisk answered",
                         where(call->method, call->target)});
    }
  }

  // The oldest unfinished call's deadline, if the timer is not already set for it.
  void arm_deadline() {
    while (!by_deadline.empty()) {
      auto oldest = by_deadline.front().lock();
      if (oldest && !oldest->finished) break;
      by_deadline.pop_front();
    }
    if (deadline_armed || by_deadline.empty()) return;
    deadline_armed = true;
    deadline_timer.expires_at(by_deadline.front().lock()->deadline);
    deadline_timer.async_wait([weak = weak_from_this()](error_code) {
      auto self = weak.lock();
      if (!self) return;
      self->deadline_armed = false;
      self->expire_due();
    });
  }

  void expire_due() {
    const auto now = steady::now();
    while (!by_deadline.empty()) {
      auto oldest = by_deadline.front().lock();
      if (oldest && !oldest->finished && oldest->deadline > now) break;
      by_deadline.pop_front();
      if (oldest && !oldest->finished) expire(oldest);  // its callback may close() or destroy us
    }
    if (!closed) arm_deadline();
  }

  // Gives queued calls to idle connections, then opens new ones up to max_connections.
  void dispatch() {
    if (closed) return;
    const std::size_t limit = std::max<std::size_t>(1, options.max_connections);
    while (!queue.empty()) {
      auto idle = std::find_if(connections.begin(), connections.end(),
                               [](const auto& c) { return c->state == Connection::State::idle; });
      if (idle != connections.end() && !queue.front()->fresh_only) {
        auto conn = *idle;
        if (conn->watched) {
          error_code ignored;
          conn->stream.socket().cancel(ignored);  // the idle watch
          conn->watched = false;
        }
        auto call = std::move(queue.front());
        queue.pop_front();
        send(conn, std::move(call));
        continue;
      }
      if (connections.size() >= limit) {
        if (idle == connections.end()) break;
        drop(*idle);  // room for the retry's new connection
      }
      auto conn = std::make_shared<Connection>(io);
      conn->call = std::move(queue.front());
      queue.pop_front();
      connections.push_back(conn);
      connect_stream(endpoint, options.connect_timeout, conn->stream, conn->resolver,
                     [weak = weak_from_this(), conn](error_code ec) {
                       if (auto self = weak.lock()) self->on_connected(conn, ec);
                     });
    }
  }

  void on_connected(const std::shared_ptr<Connection>& conn, error_code ec) {
    if (conn->state == Connection::State::dead) return;  // timed out or closed meanwhile
    if (ec) {
      auto call = conn->call;
      drop(conn);
      finish(call, Error{"ari.unreachable", connect_failure(endpoint, ec, options.connect_timeout),
                         where(call->method, call->target)});
      return;
    }
    conn->stream.expires_never();  // the call's deadline covers the rest
    auto call = std::move(conn->call);
    send(conn, std::move(call));
  }

  void send(const std::shared_ptr<Connection>& conn, std::shared_ptr<Call> call) {
    conn->state = Connection::State::busy;
    conn->call = std::move(call);
    ++conn->call->attempts;
    auto& req = conn->request;
    req = {};
    req.method(conn->call->method);
    req.target(conn->call->target);
    req.version(11);
    req.set(http::field::host, host);
    req.set(http::field::authorization, authorization);
    if (!conn->call->body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = conn->call->body;
    }
    req.prepare_payload();
    conn->parser.emplace();
    conn->parser->body_limit(reply_body_limit);
    http::async_write(conn->stream, conn->request, [weak = weak_from_this(), conn](error_code ec, std::size_t) {
      if (auto self = weak.lock()) self->on_written(conn, ec);
    });
  }

  void on_written(const std::shared_ptr<Connection>& conn, error_code ec) {
    if (conn->state == Connection::State::dead) return;
    if (ec) {
      // Nothing reached Asterisk: on a reused connection that is a stale keep-alive.
      fail_or_retry(conn, ec, true);
      return;
    }
    http::async_read(conn->stream, conn->buffer, *conn->parser, [weak = weak_from_this(), conn](error_code read, std::size_t) {
      if (auto self = weak.lock()) self->on_read(conn, read);
    });
  }

  void on_read(const std::shared_ptr<Connection>& conn, error_code ec) {
    if (conn->state == Connection::State::dead) return;
    if (ec) {
      fail_or_retry(conn, ec, !conn->parser->got_some());
      return;
    }
    auto call = std::move(conn->call);
    auto reply = conn->parser->release();
    auto result = to_result(reply.result_int(), reply.reason(), reply.body(), where(call->method, call->target));
    conn->reused = true;
    // Asterisk's "Connection: close" (and leftovers nobody asked for) end the connection.
    if (reply.keep_alive() && conn->buffer.size() == 0) {
      watch_idle(conn);
    } else {
      drop(conn);
    }
    finish(call, std::move(result));
  }

  // A connection that failed under a call. `unanswered`: no byte of a reply came. A kept
  // -alive connection that Asterisk closed (its session_keep_alive) before reading the
  // request gives exactly that; the call goes once more on a fresh connection.
  void fail_or_retry(const std::shared_ptr<Connection>& conn, error_code ec, bool unanswered) {
    auto call = std::move(conn->call);
    const bool stale = conn->reused && unanswered;
    drop(conn);
    if (stale && call->attempts < 2) {
      call->fresh_only = true;
      queue.push_front(std::move(call));
      dispatch();
      return;
    }
    const std::string field = where(call->method, call->target);
    if (unanswered) {
      finish(call, Error{"ari.unreachable", "Asterisk closed the connection without answering (" + ec.message() + ")", field});
    } else {
      finish(call, Error{"ari.protocol", "cannot read Asterisk's reply (" + ec.message() + ")", field});
    }
  }

  // Between requests. Watched (arm_idle_watch) once idle for idle_watch_after.
  void watch_idle(const std::shared_ptr<Connection>& conn) {
    conn->state = Connection::State::idle;
    conn->call.reset();
    ++conn->idle_epoch;
    conn->idle_since = steady::now();
    conn->watched = false;
    if (idle_armed) return;
    idle_armed = true;
    idle_timer.expires_after(idle_watch_after);
    idle_timer.async_wait([weak = weak_from_this()](error_code) {
      if (auto self = weak.lock()) {
        self->idle_armed = false;
        self->arm_idle_watches();
      }
    });
  }

  // A readable idle socket means Asterisk closed it (or spoke out of turn): dropped.
  void arm_idle_watches() {
    if (closed) return;
    const auto now = steady::now();
    std::optional<steady::time_point> next;
    for (const auto& conn : connections) {
      if (conn->state != Connection::State::idle || conn->watched) continue;
      if (now - conn->idle_since < idle_watch_after) {
        next = std::min(next.value_or(conn->idle_since), conn->idle_since);
        continue;
      }
      conn->watched = true;
      conn->stream.socket().async_wait(tcp::socket::wait_read,
                                       [weak = weak_from_this(), conn, epoch = conn->idle_epoch](error_code ec) {
                                         auto self = weak.lock();
                                         if (ec || !self || conn->state != Connection::State::idle || conn->idle_epoch != epoch) return;
                                         self->drop(conn);
                                       });
    }
    if (!next) return;
    idle_armed = true;
    idle_timer.expires_at(*next + idle_watch_after);
    idle_timer.async_wait([weak = weak_from_this()](error_code) {
      if (auto self = weak.lock()) {
        self->idle_armed = false;
        self->arm_idle_watches();
      }
    });
  }

  void expire(const std::shared_ptr<Call>& call) {
    if (call->finished) return;
    if (call->ws_id != 0) ws_calls.erase(call->ws_id);  // a reply that still comes is not ours
    if (auto queued = std::find(queue.begin(), queue.end(), call); queued != queue.end()) queue.erase(queued);
    auto serving = std::find_if(connections.begin(), connections.end(), [&](const auto& c) { return c->call == call; });
    if (serving != connections.end()) drop(*serving);  // its reply, if any, comes too late
    finish(call, Error{"ari.timeout",
                       "no reply from Asterisk within " + std::to_string(options.request_timeout.count()) + " ms",
                       where(call->method, call->target)});
  }

  void drop(const std::shared_ptr<Connection>& conn) {
    conn->state = Connection::State::dead;
    conn->resolver.cancel();
    conn->stream.close();
    std::erase(connections, conn);
  }

  // The one place a call ends. The callback runs last: it may call anything, even ~Client.
  void finish(const std::shared_ptr<Call>& call, Result<Response> result) {
    if (call->finished) return;
    call->finished = true;
    auto done = std::move(call->done);
    if (!by_deadline.empty() && by_deadline.front().lock() == call) arm_deadline();  // pops it (and any finished behind it)
    dispatch();
    if (done) done(std::move(result));
  }

  // --- events ----------------------------------------------------------------------

  void open() {
    closed = false;
    if (events) return;
    auto stream = std::make_shared<EventStream>(io);
    stream->serial = ++ws_serial;
    events = stream;
    connect_stream(endpoint, options.connect_timeout, beast::get_lowest_layer(stream->ws), stream->resolver,
                   [weak = weak_from_this(), stream](error_code ec) {
                     if (auto self = weak.lock()) self->on_events_connected(stream, ec);
                   });
  }

  void on_events_connected(const std::shared_ptr<EventStream>& stream, error_code ec) {
    if (events != stream) return;
    if (ec) {
      lose_events(stream, Error{"ari.unreachable", connect_failure(endpoint, ec, options.connect_timeout), "/ari/events"});
      return;
    }
    beast::get_lowest_layer(stream->ws).expires_never();  // the WebSocket's own timeouts from here on
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options.connect_timeout;
    timeouts.idle_timeout = options.event_idle_timeout;
    timeouts.keep_alive_pings = true;
    stream->ws.set_option(timeouts);
    stream->ws.set_option(websocket::stream_base::decorator([auth = authorization](websocket::request_type& req) {
      req.set(http::field::authorization, auth);
    }));
    stream->ws.read_message_max(event_frame_limit);
    stream->ws.auto_fragment(false);  // a RESTRequest is one frame, whatever its size
    const auto target = with_query("/ari/events", {{"app", endpoint.app}, {"subscribeAll", "false"}});
    stream->ws.async_handshake(stream->handshake_reply, host, target, [weak = weak_from_this(), stream](error_code shook) {
      if (auto self = weak.lock()) self->on_handshake(stream, shook);
    });
  }

  void on_handshake(const std::shared_ptr<EventStream>& stream, error_code ec) {
    if (events != stream) return;
    if (ec == websocket::error::upgrade_declined) {
      // ARI answers a plain HTTP error here: 401 for wrong credentials, 400/404 for a bad app.
      const auto& reply = stream->handshake_reply;
      lose_events(stream, Error{code_for_status(reply.result_int()),
                                "Asterisk refused the event WebSocket for app '" + quote_untrusted(endpoint.app, 80) +
                                    "': " + status_text(reply),
                                "/ari/events"});
      return;
    }
    if (ec) {
      lose_events(stream, events_error(*stream, ec, "the event WebSocket handshake failed", options.connect_timeout));
      return;
    }
    stream->state = EventStream::State::open;
    read_events(stream);
    if (options.rest_over_websocket) {
      // Until its answer, calls go over HTTP.
      stream->outbox.emplace_back(rest_request_frame(probe_id, "GET", "asterisk/ping", {}), 0);
      write_outbox(stream);
    }
    if (handlers.opened) handlers.opened();
  }

  void read_events(const std::shared_ptr<EventStream>& stream) {
    stream->ws.async_read(stream->buffer, [weak = weak_from_this(), stream](error_code ec, std::size_t) {
      if (auto self = weak.lock()) self->on_frame(stream, ec);
    });
  }

  void on_frame(const std::shared_ptr<EventStream>& stream, error_code ec) {
    if (events != stream) return;
    if (ec) {
      lose_events(stream, events_error(*stream, ec, "the event WebSocket was lost", options.event_idle_timeout));
      return;
    }
    const bool text = stream->ws.got_text();
    const auto bytes = stream->buffer.data();  // a flat_buffer: one piece
    const std::string_view frame(static_cast<const char*>(bytes.data()), bytes.size());
    std::optional<Error> bad;
    json::value parsed;
    if (!text) {
      bad = Error{"ari.protocol", "a binary frame of " + std::to_string(frame.size()) + " bytes where an event was expected",
                  "/ari/events"};
    } else {
      error_code parse_error;
      parsed = json::parse(frame, parse_error);
      if (parse_error) {
        bad = Error{"ari.protocol", "an event that is not JSON (" + parse_error.message() + "): " + quote_untrusted(frame),
                    "/ari/events"};
      } else if (!parsed.is_object()) {
        bad = Error{"ari.protocol", "an event that is not a JSON object: " + quote_untrusted(frame), "/ari/events"};
      }
    }
    stream->buffer.consume(stream->buffer.size());
    // The next read first: whatever the handler does (close(), ~Client, throw), the
    // stream's state is whole.
    read_events(stream);
    if (!bad) {
      const auto& object = parsed.as_object();
      const auto* type = object.if_contains("type");
      if (type != nullptr && type->is_string() && type->as_string() == "RESTResponse") {
        on_rest_response(*stream, object);
        return;
      }
    }
    if (bad) {
      if (handlers.malformed) handlers.malformed(*bad);
    } else if (handlers.event) {
      handlers.event(parsed.as_object());
    }
  }

  // `limit`: the timeout that applied (the handshake's, or the idle one once open).
  static Error events_error(const EventStream& stream, error_code ec, const std::string& what,
                            std::chrono::milliseconds limit) {
    if (ec == websocket::error::closed) {
      const auto& reason = stream.ws.reason();
      std::string text = "Asterisk closed the event WebSocket (code " + std::to_string(reason.code);
      if (!reason.reason.empty()) text += ", " + quote_untrusted(std::string_view(reason.reason.data(), reason.reason.size()));
      return Error{"ari.unreachable", text + ")", "/ari/events"};
    }
    if (ec == beast::error::timeout) {
      return Error{"ari.timeout", what + ": nothing from Asterisk within " + std::to_string(limit.count()) + " ms",
                   "/ari/events"};
    }
    if (ec == websocket::condition::protocol_violation || ec == websocket::error::message_too_big) {
      return Error{"ari.protocol", what + ": " + ec.message(), "/ari/events"};
    }
    return Error{"ari.unreachable", what + ": " + ec.message(), "/ari/events"};
  }

  // The WebSocket failed: `closed` once, last.
  void lose_events(const std::shared_ptr<EventStream>& stream, const Error& why) {
    stop_events(stream);
    if (closed) return;  // a failed call's callback closed the client
    if (handlers.closed) handlers.closed(why);
  }

  void stop_events(std::shared_ptr<EventStream> stream) {  // a copy: `events` itself may be passed
    if (events == stream) events.reset();
    const bool was_open = stream->state == EventStream::State::open;
    stream->state = EventStream::State::done;
    stream->rest_ready = false;
    stream->resolver.cancel();
    if (was_open && stream->ws.is_open()) {
      // A close frame, so Asterisk logs a clean goodbye; the handshake timeout bounds it.
      stream->ws.async_close(websocket::close_code::normal, [stream](error_code) {
        beast::get_lowest_layer(stream->ws).close();
      });
    } else {
      beast::get_lowest_layer(stream->ws).close();
    }
    release_websocket_calls(*stream);  // last: a callback may do anything
  }

  // --- both ------------------------------------------------------------------------

  // close() (notify) and ~Client (silent).
  void shutdown(bool notify) {
    closed = true;
    deadline_timer.cancel();
    idle_timer.cancel();
    by_deadline.clear();
    if (events) stop_events(events);
    std::vector<std::shared_ptr<Call>> calls;  // in flight first, then the queued ones, oldest first
    for (const auto& conn : std::vector(connections)) {
      if (conn->call) calls.push_back(conn->call);
      drop(conn);
    }
    calls.insert(calls.end(), queue.begin(), queue.end());
    queue.clear();
    for (auto& [id, call] : ws_calls) calls.push_back(std::move(call));
    ws_calls.clear();
    std::vector<std::pair<std::function<void(Result<Response>)>, std::string>> callbacks;
    for (const auto& call : calls) {
      if (call->finished) continue;
      call->finished = true;
      callbacks.emplace_back(std::move(call->done), where(call->method, call->target));
    }
    if (!notify) return;
    for (auto& [done, field] : callbacks) {
      if (done) done(Error{"ari.closed", "the ARI client was closed before Asterisk answered", field});
    }
  }
};

Client::Client(asio::io_context& io, Endpoint endpoint, Options options, Handlers handlers)
    : impl_(std::make_shared<Impl>(io, std::move(endpoint), options, std::move(handlers))) {}

Client::~Client() { impl_->shutdown(false); }

void Client::open() { impl_->open(); }

void Client::set_app(std::string app) { impl_->endpoint.app = std::move(app); }

void Client::drop_events() {
  if (impl_->events) impl_->stop_events(impl_->events);
}

void Client::close() {
  auto keep = impl_;  // a request's callback may destroy this Client
  keep->shutdown(true);
}

void Client::request(http::verb method, std::string target, std::function<void(Result<Response>)> done,
                     json::object body) {
  impl_->request(method, std::move(target), std::move(done), std::move(body));
}

bool Client::is_open() const { return impl_->events && impl_->events->state == EventStream::State::open; }

bool Client::rest_on_websocket() const { return impl_->events && impl_->events->rest_ready; }

std::size_t Client::connection_count() const { return impl_->connections.size(); }

}  // namespace callback::ari
