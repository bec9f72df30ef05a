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
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <deque>
#include <optional>
#include <random>
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

// The event WebSocket of one open(), framed here (RFC 6455, the client's side): Beast's
// websocket::stream completes each frame it already holds through a post of its own, a
// round of the io_context (an epoll_wait) for every event; here every frame a read brought
// is handled in one go, and the frames written meanwhile go out in one write.
struct EventStream {
  explicit EventStream(asio::io_context& io) : stream(io), resolver(io), idle_timer(io) {}
  enum class State { connecting, open, done };
  beast::tcp_stream stream;  // the connect and the handshake, with their timeout; then its socket
  tcp::resolver resolver;
  beast::flat_buffer buffer;  // read and not yet handled (the handshake reply's leftovers first)
  http::request<http::empty_body> handshake;
  std::optional<http::response_parser<http::string_body>> handshake_reply;
  std::string key;  // Sec-WebSocket-Key
  State state = State::connecting;
  std::uint64_t serial = 0;
  // A fragmented message so far (opcode 0 continuations): its opcode and payload.
  unsigned message_opcode = 0;
  std::string message;
  // Idle: a ping after half of event_idle_timeout without a byte, given up after all of it.
  asio::steady_timer idle_timer;
  steady::time_point last_read;
  bool pinged = false;
  // Frames to write (masked), and the one write under way; the REST calls in each.
  std::string pending, inflight;
  std::vector<std::uint64_t> pending_calls;
  bool writing = false;
  bool handling = false;  // the frames of a read are being handled: writes wait for the end
  // drop_events() with REST calls in flight on it: no longer the client's event stream, it
  // is read for their replies only, and closed once the last is answered or expired.
  bool draining = false;
  // REST over the WebSocket: Asterisk answered the probe.
  bool rest_ready = false;
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

// One client frame, FIN set, masked with `mask` (RFC 6455 5.2, 5.3), appended to `out`.
void append_frame(std::string& out, unsigned opcode, std::string_view payload, std::uint32_t mask) {
  out += static_cast<char>(0x80U | opcode);
  const std::size_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(0x80U | n);
  } else if (n < 65536) {
    out += static_cast<char>(0x80U | 126U);
    out += static_cast<char>((n >> 8U) & 0xFFU);
    out += static_cast<char>(n & 0xFFU);
  } else {
    out += static_cast<char>(0x80U | 127U);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> static_cast<unsigned>(shift)) & 0xFFU);
  }
  const char key[4] = {static_cast<char>(mask >> 24U), static_cast<char>(mask >> 16U), static_cast<char>(mask >> 8U),
                       static_cast<char>(mask)};
  out.append(key, 4);
  const std::size_t at = out.size();
  out.append(payload);
  for (std::size_t i = 0; i < n; ++i) out[at + i] = static_cast<char>(out[at + i] ^ key[i & 3U]);
}

// One frame from the server at the start of `data`.
struct Frame {
  bool fin = false;
  unsigned opcode = 0;
  std::string_view payload;
  std::size_t size = 0;  // header and payload
};
enum class Parsed { frame, need_more, bad };

Parsed next_frame(std::string_view data, Frame& frame, std::string& why) {
  if (data.size() < 2) return Parsed::need_more;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(data[i]); };
  frame.fin = (byte(0) & 0x80U) != 0;
  frame.opcode = byte(0) & 0x0FU;
  if ((byte(0) & 0x70U) != 0) {
    why = "a frame with reserved bits set";
    return Parsed::bad;
  }
  if ((byte(1) & 0x80U) != 0) {
    why = "a masked frame from the server";
    return Parsed::bad;
  }
  std::uint64_t length = byte(1) & 0x7FU;
  std::size_t at = 2;
  if (length == 126) {
    if (data.size() < 4) return Parsed::need_more;
    length = (std::uint64_t{byte(2)} << 8U) | byte(3);
    at = 4;
  } else if (length == 127) {
    if (data.size() < 10) return Parsed::need_more;
    length = 0;
    for (std::size_t i = 2; i < 10; ++i) length = (length << 8U) | byte(i);
    at = 10;
  }
  if (frame.opcode >= 8) {
    if (frame.opcode > 10 || !frame.fin || length > 125) {
      why = "a control frame that is unknown, fragmented or over 125 bytes";
      return Parsed::bad;
    }
  } else if (frame.opcode > 2) {
    why = "a frame of unknown opcode " + std::to_string(frame.opcode);
    return Parsed::bad;
  }
  if (length > event_frame_limit) {
    why = "a message over " + std::to_string(event_frame_limit) + " bytes";
    return Parsed::bad;
  }
  if (data.size() - at < length) return Parsed::need_more;
  frame.payload = data.substr(at, static_cast<std::size_t>(length));
  frame.size = at + static_cast<std::size_t>(length);
  return Parsed::frame;
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
  std::mt19937 mask_source{std::random_device{}()};  // the frames' masks and the handshake's key
  std::vector<std::shared_ptr<EventStream>> draining;  // EventStream::draining

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
    queue_frame(*stream, 0x1,
                rest_request_frame(std::to_string(call->ws_id), http::to_string(call->method),
                                   std::string_view(call->target).substr(5), call->body),
                call->ws_id);
    write_outbox(stream);
  }

  void queue_frame(EventStream& stream, unsigned opcode, std::string_view payload, std::uint64_t call) {
    append_frame(stream.pending, opcode, payload, static_cast<std::uint32_t>(mask_source()));
    if (call != 0) stream.pending_calls.push_back(call);
  }

  // Everything queued, in one write. Not while the frames of a read are being handled:
  // the calls they make go together once they are.
  void write_outbox(const std::shared_ptr<EventStream>& stream) {
    if (stream->writing || stream->handling || stream->pending.empty() || stream->state != EventStream::State::open) return;
    stream->writing = true;
    stream->inflight.clear();
    stream->inflight.swap(stream->pending);
    stream->pending_calls.clear();  // on their way
    asio::async_write(stream->stream.socket(), asio::buffer(stream->inflight),
                      [weak = weak_from_this(), stream](error_code ec, std::size_t) {
                        auto self = weak.lock();
                        if (!self) return;
                        stream->writing = false;
                        if (!self->live(*stream)) return;
                        if (ec) {
                          self->fail_stream(stream, Error{"ari.unreachable", "the event WebSocket was lost: " + ec.message(),
                                                          "/ari/events"});
                          return;
                        }
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

  // The calls whose frames are not written yet have not reached Asterisk: they go over HTTP
  // (dispatch() sends them).
  void requeue_unwritten(EventStream& stream) {
    for (const auto id : stream.pending_calls) {
      const auto found = ws_calls.find(id);
      if (found == ws_calls.end()) continue;  // expired
      auto call = std::move(found->second);
      ws_calls.erase(found);
      call->ws_id = 0;
      call->attempts = 0;
      queue.push_back(std::move(call));
    }
    stream.pending_calls.clear();
    stream.pending.clear();
  }

  // `stream` is gone. Calls not yet written go over HTTP; those written fail: Asterisk may
  // have done them or not. Nothing is left on the stream. A callback may close() the
  // client or destroy it: each call is looked up again before it is finished.
  void release_websocket_calls(EventStream& stream) {
    if (closed) {  // shutdown() ends every call in ws_calls
      stream.pending.clear();
      stream.pending_calls.clear();
      return;
    }
    requeue_unwritten(stream);
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
    if (call->ws_id != 0) {
      ws_calls.erase(call->ws_id);  // a reply that still comes is not ours
      settle_drained();
    }
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
    connect_stream(endpoint, options.connect_timeout, stream->stream, stream->resolver,
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
    std::string nonce(16, '\0');
    for (auto& c : nonce) c = static_cast<char>(mask_source() & 0xFFU);
    stream->key = base64_encode(nonce);
    auto& req = stream->handshake;
    req.method(http::verb::get);
    req.target(with_query("/ari/events", {{"app", endpoint.app}, {"subscribeAll", "false"}}));
    req.version(11);
    req.set(http::field::host, host);
    req.set(http::field::upgrade, "websocket");
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::sec_websocket_key, stream->key);
    req.set(http::field::sec_websocket_version, "13");
    req.set(http::field::authorization, authorization);
    stream->stream.expires_after(options.connect_timeout);  // the whole handshake
    http::async_write(stream->stream, req, [weak = weak_from_this(), stream](error_code written, std::size_t) {
      auto self = weak.lock();
      if (!self || self->events != stream) return;
      if (written) {
        self->lose_events(stream, self->handshake_error(written));
        return;
      }
      stream->handshake_reply.emplace();
      stream->handshake_reply->body_limit(64 * 1024);
      http::async_read(stream->stream, stream->buffer, *stream->handshake_reply, [weak, stream](error_code read, std::size_t) {
        if (auto self2 = weak.lock()) self2->on_handshake(stream, read);
      });
    });
  }

  Error handshake_error(error_code ec) const {
    if (ec == beast::error::timeout) {
      return Error{"ari.timeout", "the event WebSocket handshake failed: nothing from Asterisk within " +
                                      std::to_string(options.connect_timeout.count()) + " ms",
                   "/ari/events"};
    }
    return Error{"ari.unreachable", "the event WebSocket handshake failed: " + ec.message(), "/ari/events"};
  }

  void on_handshake(const std::shared_ptr<EventStream>& stream, error_code ec) {
    if (events != stream) return;
    if (ec) {
      lose_events(stream, handshake_error(ec));
      return;
    }
    const auto& reply = stream->handshake_reply->get();
    if (reply.result_int() != 101) {
      // ARI answers a plain HTTP error here: 401 for wrong credentials, 400/404 for a bad app.
      lose_events(stream, Error{code_for_status(reply.result_int()),
                                "Asterisk refused the event WebSocket for app '" + quote_untrusted(endpoint.app, 80) +
                                    "': " + status_text(reply),
                                "/ari/events"});
      return;
    }
    websocket::detail::sec_ws_accept_type accept;
    websocket::detail::make_sec_ws_accept(accept, stream->key);
    if (reply[http::field::sec_websocket_accept] != std::string_view(accept.data(), accept.size())) {
      lose_events(stream, Error{"ari.protocol", "the event WebSocket handshake failed: a wrong Sec-WebSocket-Accept",
                                "/ari/events"});
      return;
    }
    stream->stream.expires_never();
    stream->state = EventStream::State::open;
    stream->last_read = steady::now();
    arm_idle(stream);
    if (options.rest_over_websocket) {
      // Until its answer, calls go over HTTP.
      queue_frame(*stream, 0x1, rest_request_frame(probe_id, "GET", "asterisk/ping", {}), 0);
      write_outbox(stream);
    }
    auto self = shared_from_this();
    if (handlers.opened) handlers.opened();
    if (events == stream) pump(stream);  // what came with the reply, then the first read
  }

  // Handles every whole frame read so far, then reads on.
  void pump(const std::shared_ptr<EventStream>& stream) {
    auto self = shared_from_this();  // through the handlers, which may even destroy the Client
    stream->handling = true;
    for (;;) {
      if (!live(*stream)) return;
      const auto bytes = stream->buffer.data();
      const std::string_view data(static_cast<const char*>(bytes.data()), bytes.size());
      Frame frame;
      std::string why;
      const Parsed got = next_frame(data, frame, why);
      if (got == Parsed::need_more) break;
      if (got == Parsed::bad) {
        fail_stream(stream, Error{"ari.protocol", "the event WebSocket was lost: " + why, "/ari/events"});
        return;
      }
      if (frame.opcode == 0x9) {  // ping: pong
        queue_frame(*stream, 0xA, frame.payload, 0);
        stream->buffer.consume(frame.size);
        continue;
      }
      if (frame.opcode == 0xA) {  // pong
        stream->buffer.consume(frame.size);
        continue;
      }
      if (frame.opcode == 0x8) {
        std::string text = "Asterisk closed the event WebSocket";
        if (frame.payload.size() >= 2) {
          const unsigned code = (static_cast<unsigned>(static_cast<unsigned char>(frame.payload[0])) << 8U) |
                                static_cast<unsigned char>(frame.payload[1]);
          text += " (code " + std::to_string(code);
          if (frame.payload.size() > 2) text += ", " + quote_untrusted(frame.payload.substr(2));
          text += ")";
        }
        stream->buffer.consume(frame.size);
        fail_stream(stream, Error{"ari.unreachable", text, "/ari/events"});
        return;
      }
      // A data frame: a whole message, or a piece of one.
      std::optional<std::string> problem;
      if (frame.opcode == 0 && stream->message_opcode == 0) problem = "a continuation frame with no message begun";
      if (frame.opcode != 0 && stream->message_opcode != 0) problem = "a new message before the last one ended";
      if (frame.opcode == 0 && stream->message.size() + frame.payload.size() > event_frame_limit) {
        problem = "a message over " + std::to_string(event_frame_limit) + " bytes";
      }
      if (problem) {
        fail_stream(stream, Error{"ari.protocol", "the event WebSocket was lost: " + *problem, "/ari/events"});
        return;
      }
      if (frame.fin && frame.opcode != 0) {
        deliver(stream, frame.opcode == 0x1, frame.payload, frame.size);
        continue;
      }
      if (frame.opcode != 0) stream->message_opcode = frame.opcode;
      stream->message.append(frame.payload);
      stream->buffer.consume(frame.size);
      if (frame.fin) {
        const std::string message = std::move(stream->message);
        const bool text = stream->message_opcode == 0x1;
        stream->message.clear();
        stream->message_opcode = 0;
        deliver(stream, text, message, 0);
      }
    }
    stream->handling = false;
    write_outbox(stream);  // what the handlers asked for, in one write
    stream->stream.socket().async_read_some(stream->buffer.prepare(64 * 1024),
                                            [weak = weak_from_this(), stream](error_code ec, std::size_t n) {
                                              auto self2 = weak.lock();
                                              if (!self2 || !self2->live(*stream)) return;
                                              if (ec) {
                                                self2->fail_stream(stream, Error{"ari.unreachable",
                                                                                 "the event WebSocket was lost: " + ec.message(),
                                                                                 "/ari/events"});
                                                return;
                                              }
                                              stream->buffer.commit(n);
                                              stream->last_read = steady::now();
                                              stream->pinged = false;
                                              self2->pump(stream);
                                            });
  }

  // One message: an event for the handler, a RESTResponse for its call, or a malformed
  // one. `consume`: its bytes in the buffer, let go once it is parsed (0: not in the buffer).
  void deliver(const std::shared_ptr<EventStream>& stream, bool text, std::string_view frame, std::size_t consume) {
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
    if (consume != 0) stream->buffer.consume(consume);  // `frame` is gone from here on
    if (bad) {
      if (handlers.malformed) handlers.malformed(*bad);
      return;
    }
    const auto& object = parsed.as_object();
    const auto* type = object.if_contains("type");
    if (type != nullptr && type->is_string() && type->as_string() == "RESTResponse") {
      on_rest_response(*stream, object);
      settle_drained();
      return;
    }
    if (stream->draining) return;  // the app's events are another stream's now
    if (handlers.event) handlers.event(object);
  }

  // A ping after half of event_idle_timeout without a byte from Asterisk; given up after all of it.
  void arm_idle(const std::shared_ptr<EventStream>& stream) {
    const auto idle = options.event_idle_timeout;
    stream->idle_timer.expires_at(stream->last_read + (stream->pinged ? idle : idle / 2));
    stream->idle_timer.async_wait([weak = weak_from_this(), stream](error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->events != stream) return;
      const auto quiet = steady::now() - stream->last_read;
      if (quiet >= self->options.event_idle_timeout) {
        self->lose_events(stream, Error{"ari.timeout", "the event WebSocket was lost: nothing from Asterisk within " +
                                                           std::to_string(self->options.event_idle_timeout.count()) + " ms",
                                        "/ari/events"});
        return;
      }
      if (quiet >= self->options.event_idle_timeout / 2 && !stream->pinged) {
        stream->pinged = true;
        self->queue_frame(*stream, 0x9, {}, 0);
        self->write_outbox(stream);
      }
      self->arm_idle(stream);
    });
  }

  // The client's event stream, or one drained for the replies still due on it.
  bool live(const EventStream& stream) const { return events.get() == &stream || stream.draining; }

  void fail_stream(const std::shared_ptr<EventStream>& stream, const Error& why) {
    if (stream->draining) {
      stop_events(stream);  // its calls fail; drop_events() promised no `closed`
    } else {
      lose_events(stream, why);
    }
  }

  // drop_events(): the app was taken over (ApplicationReplaced), but Asterisk keeps this
  // WebSocket and answers the RESTRequests it read on it there. Those not yet written go
  // over HTTP; the stream stays open for the replies to the others.
  void drain_events() {
    auto stream = events;
    if (!stream) return;
    const bool in_flight = stream->state == EventStream::State::open &&
                           std::any_of(ws_calls.begin(), ws_calls.end(),
                                       [&](const auto& entry) { return entry.second->ws_stream == stream->serial; });
    if (!in_flight) {
      stop_events(stream);
      return;
    }
    events.reset();
    stream->draining = true;
    stream->rest_ready = false;
    stream->idle_timer.cancel();  // the calls' deadlines bound the wait
    requeue_unwritten(*stream);
    draining.push_back(stream);
    dispatch();
    settle_drained();
  }

  // Drained streams with no call left on them are closed.
  void settle_drained() {
    for (std::size_t i = 0; i < draining.size();) {
      const auto serial = draining[i]->serial;
      const bool waiting = std::any_of(ws_calls.begin(), ws_calls.end(),
                                       [&](const auto& entry) { return entry.second->ws_stream == serial; });
      if (waiting) {
        ++i;
        continue;
      }
      auto stream = draining[i];
      stop_events(stream);  // takes it off the list
    }
  }

  // The WebSocket failed: `closed` once, last.
  void lose_events(const std::shared_ptr<EventStream>& stream, const Error& why) {
    stop_events(stream);
    if (closed) return;  // a failed call's callback closed the client
    if (handlers.closed) handlers.closed(why);
  }

  void stop_events(std::shared_ptr<EventStream> stream) {  // a copy: `events` itself may be passed
    if (events == stream) events.reset();
    if (stream->draining) {
      stream->draining = false;
      std::erase(draining, stream);
    }
    const bool was_open = stream->state == EventStream::State::open;
    stream->state = EventStream::State::done;
    stream->rest_ready = false;
    stream->resolver.cancel();
    stream->idle_timer.cancel();
    if (was_open && !stream->writing && stream->stream.socket().is_open()) {
      // A close frame (1000), so Asterisk logs a clean goodbye; then the socket goes.
      stream->writing = true;
      stream->inflight.clear();
      append_frame(stream->inflight, 0x8, std::string_view("\x03\xe8", 2), static_cast<std::uint32_t>(mask_source()));
      asio::async_write(stream->stream.socket(), asio::buffer(stream->inflight), [stream](error_code, std::size_t) {
        error_code ignored;
        stream->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream->stream.close();
      });
    } else {
      stream->stream.close();
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
    for (const auto& stream : std::vector(draining)) stop_events(stream);
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

void Client::drop_events() { impl_->drain_events(); }

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
