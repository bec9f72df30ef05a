// The ARI transport (plugins/engine_ari/ari_client) against an in-test server on
// 127.0.0.1 that answers with the bytes a real Asterisk 23.4.1 sent
// (tests/fixtures/asterisk/ari-*.http.jsonl) and streams recorded events
// (ari-*.events.jsonl) over a WebSocket framed by hand, so a test can also cut a frame
// in half. Client and server share one io_context; tests wait on callbacks, never on time.
#include "ari_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace callback;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

const fs::path recordings{CALLBACK_ASTERISK_RECORDINGS};

std::vector<std::string> lines_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// The exchange labelled `label` in an `ari-*.http.jsonl` file (the WebSocket handshake
// when `label` is empty).
json::object recorded_exchange(const std::string& file, const std::string& label) {
  for (const auto& line : lines_of(recordings / file)) {
    auto exchange = json::parse(line).as_object();
    const bool handshake = exchange.at("kind") == "ws-handshake";
    if (label.empty() ? handshake : (!handshake && exchange.at("label") == label.c_str())) return exchange;
  }
  ADD_FAILURE() << "no exchange '" << label << "' in " << file;
  return {};
}

std::string recorded_response(const std::string& file, const std::string& label) {
  return std::string(recorded_exchange(file, label).at("response").as_string());
}

// A header of a raw recorded request ("Authorization" -> "Basic Y2Fs...").
std::string recorded_request_header(const std::string& file, const std::string& label, const std::string& name) {
  std::istringstream request(std::string(recorded_exchange(file, label).at("request").as_string()));
  for (std::string line; std::getline(request, line);) {
    if (line.starts_with(name + ": ")) return line.substr(name.size() + 2, line.size() - name.size() - 3);  // minus \r
  }
  return {};
}

// The text frames of an `ari-*.events.jsonl` file, exactly as received.
std::vector<std::string> recorded_events(const std::string& file) { return lines_of(recordings / file); }

// Asterisk's recorded replies say "Connection: close" (the recording client asked for it);
// without that line they are what Asterisk sends on a kept-alive connection.
std::string kept_alive(std::string response) {
  const std::string line = "Connection: close\r\n";
  const auto at = response.find(line);
  EXPECT_NE(at, std::string::npos);
  if (at != std::string::npos) response.erase(at, line.size());
  return response;
}

// A reply the recordings lack (a 500 without JSON, a 400 to the upgrade), derived from the recorded 404:
// the same headers, another status line and body, Content-Length to match.
std::string derived_reply(const std::string& status_line, const std::string& body) {
  std::string reply = recorded_response("ari-http-basics.http.jsonl", "unknown channel");
  reply.replace(0, reply.find("\r\n"), status_line);
  reply.erase(reply.find("\r\n\r\n") + 4);
  const auto length = reply.find("Content-Length: ");
  reply.replace(length, reply.find("\r\n", length) - length, "Content-Length: " + std::to_string(body.size()));
  return reply + body;
}

bool says_close(const std::string& response) {
  return response.substr(0, response.find("\r\n\r\n") + 2).find("\r\nConnection: close\r\n") != std::string::npos;
}

// One unmasked server frame: FIN + opcode, then the RFC 6455 length.
std::string frame(std::string_view payload, unsigned char opcode = 0x1) {
  std::string out(1, static_cast<char>(0x80U | opcode));
  const std::size_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(n);
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(126);
    out += static_cast<char>((n >> 8) & 0xFFU);
    out += static_cast<char>(n & 0xFFU);
  } else {
    out += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xFFU);
  }
  return out + std::string(payload);
}

// What the server saw of one request.
struct Seen {
  int connection = 0;  // 1, 2, ... in accept order
  std::string method, target, host, authorization, content_type, body;
  bool upgrade = false;
};

enum class Act { answer, answer_then_hang_up, silent, hang_up };
struct Step {
  Act act = Act::answer;
  std::string bytes;  // the reply; after it, "Connection: close" in it (or answer_then_hang_up) closes the connection
};

struct WsStep {
  enum Kind { text, raw, hang_up } kind;
  std::string bytes;
};

// The ARI side: REST requests go to `rest`; a WebSocket upgrade gets `refuse_upgrade`
// (a plain HTTP reply) or the recorded 101 and then `events`. Client frames are read
// and dropped, except Close, which is answered (as Asterisk does) before hanging up.
class AriServer {
 public:
  explicit AriServer(asio::io_context& io) : io_(io), acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io_, accept_loop(), asio::detached);
  }

  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // Closes the listener and every connection: what it started, it stops.
  void stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& socket : sockets_) socket->close(ignored);
  }

  std::function<Step(const Seen& request, int request_on_connection)> rest = [](const Seen&, int) {
    return Step{Act::answer, recorded_response("ari-http-basics.http.jsonl", "asterisk info")};
  };
  std::optional<std::string> refuse_upgrade;
  std::vector<WsStep> events;
  // Each text frame the client sends on the WebSocket (unmasked): text -> that frame sent
  // back, raw -> nothing (an Asterisk before REST over WebSocket), hang_up -> the TCP close.
  std::function<WsStep(const std::string&)> on_text = [](const std::string&) { return WsStep{WsStep::raw, {}}; };
  std::vector<std::string> texts;
  int closes = 0;  // close frames the client sent

  // A text frame on the open WebSocket now (a reply that comes late).
  void push_text(const std::string& text) {
    auto socket = ws_socket_;
    auto bytes = std::make_shared<std::string>(frame(text));
    asio::async_write(*socket, asio::buffer(*bytes), [socket, bytes](boost::system::error_code, std::size_t) {});
  }
  std::vector<Seen> seen;
  int accepted = 0;

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      auto shared = std::make_shared<tcp::socket>(std::move(socket));
      sockets_.push_back(shared);
      asio::co_spawn(io_, serve(shared, ++accepted), asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<tcp::socket> socket, int connection) {
    beast::flat_buffer buffer;
    for (int on_connection = 1;; ++on_connection) {
      http::request<http::string_body> request;
      auto [ec, n] = co_await http::async_read(*socket, buffer, request, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      Seen s{connection,
             std::string(request.method_string()),
             std::string(request.target()),
             std::string(request[http::field::host]),
             std::string(request[http::field::authorization]),
             std::string(request[http::field::content_type]),
             request.body(),
             beast::websocket::is_upgrade(request)};
      seen.push_back(s);
      if (s.upgrade) {
        co_await serve_events(socket, request, buffer);
        co_return;
      }
      const Step step = rest(s, on_connection);
      if (step.act == Act::hang_up) break;
      if (step.act == Act::silent) continue;
      co_await asio::async_write(*socket, asio::buffer(step.bytes), asio::as_tuple(asio::use_awaitable));
      if (step.act == Act::answer_then_hang_up || says_close(step.bytes)) break;
    }
    boost::system::error_code ignored;
    socket->close(ignored);
  }

  asio::awaitable<void> serve_events(std::shared_ptr<tcp::socket> socket, const http::request<http::string_body>& request,
                                     beast::flat_buffer& buffer) {
    boost::system::error_code ignored;
    if (refuse_upgrade) {
      co_await asio::async_write(*socket, asio::buffer(*refuse_upgrade), asio::as_tuple(asio::use_awaitable));
      socket->close(ignored);
      co_return;
    }
    // The recorded 101, with the accept key for this client's key.
    std::string upgrade = recorded_response("ari-a-busy.http.jsonl", "");
    beast::websocket::detail::sec_ws_accept_type accept;
    beast::websocket::detail::make_sec_ws_accept(accept, request[http::field::sec_websocket_key]);
    const auto at = upgrade.find("Sec-WebSocket-Accept: ") + 22;
    upgrade.replace(at, upgrade.find("\r\n", at) - at, std::string(accept.data(), accept.size()));
    std::string out = upgrade;
    for (const auto& step : events) {
      if (step.kind == WsStep::hang_up) {
        co_await asio::async_write(*socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
        socket->close(ignored);
        co_return;
      }
      out += step.kind == WsStep::text ? frame(step.bytes) : step.bytes;
    }
    ws_socket_ = socket;
    co_await asio::async_write(*socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
    // Client frames: 2 bytes, extended length, 4 bytes of mask, payload.
    for (;;) {
      if (!co_await need(*socket, buffer, 2)) co_return;
      const auto* head = static_cast<const unsigned char*>(buffer.data().data());
      const unsigned opcode = head[0] & 0x0FU;
      std::size_t length = head[1] & 0x7FU;
      std::size_t header = 6;
      if (length == 126) header = 8;
      if (length == 127) header = 14;
      if (!co_await need(*socket, buffer, header)) co_return;
      head = static_cast<const unsigned char*>(buffer.data().data());
      if (header > 6) {
        length = 0;
        for (std::size_t i = 2; i < header - 4; ++i) length = (length << 8) | head[i];
      }
      if (!co_await need(*socket, buffer, header + length)) co_return;
      head = static_cast<const unsigned char*>(buffer.data().data());
      std::string payload(reinterpret_cast<const char*>(head) + header, length);
      for (std::size_t i = 0; i < length; ++i) payload[i] = static_cast<char>(payload[i] ^ head[header - 4 + i % 4]);
      buffer.consume(header + length);
      if (opcode == 0x1) {
        texts.push_back(payload);
        const WsStep step = on_text(payload);
        if (step.kind == WsStep::hang_up) {
          socket->close(ignored);
          co_return;
        }
        if (step.kind == WsStep::text) {
          co_await asio::async_write(*socket, asio::buffer(frame(step.bytes)), asio::as_tuple(asio::use_awaitable));
        }
      }
      if (opcode == 0x8) {
        ++closes;
        co_await asio::async_write(*socket, asio::buffer(frame("", 0x8)), asio::as_tuple(asio::use_awaitable));
        socket->close(ignored);
        co_return;
      }
    }
  }

  static asio::awaitable<bool> need(tcp::socket& socket, beast::flat_buffer& buffer, std::size_t n) {
    while (buffer.size() < n) {
      auto [ec, got] = co_await socket.async_read_some(buffer.prepare(4096), asio::as_tuple(asio::use_awaitable));
      if (ec) co_return false;
      buffer.commit(got);
    }
    co_return true;
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::shared_ptr<tcp::socket> ws_socket_;
};

class AriClientTest : public ::testing::Test {
 protected:
  void make_client(std::uint16_t port) {
    ari::Client::Handlers handlers;
    handlers.opened = [this] { ++opened; };
    handlers.event = [this](const json::object& event) { events.push_back(event); };
    handlers.closed = [this](const Error& why) { closed.push_back(why); };
    handlers.malformed = [this](const Error& why) { malformed.push_back(why); };
    client = std::make_unique<ari::Client>(io, ari::Endpoint{"127.0.0.1", port, "callback", "callbacksecret", "callback-app"},
                                           options, std::move(handlers));
  }
  void make_client() { make_client(server.port()); }

  // Runs the loop until `done` holds; false after 10 s (a failure, not a sleep).
  bool run_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (io.stopped()) io.restart();
      io.run_one_until(deadline);
    }
    return true;
  }

  // Stops the server and runs the loop until no work is left: whatever the client was
  // going to call, it has called.
  void drain() {
    server.stop();
    io.restart();
    io.run_for(10s);
    EXPECT_TRUE(io.stopped()) << "work left after 10 s";
  }

  Result<ari::Response> call(http::verb method, const std::string& target, json::object body = {}) {
    std::optional<Result<ari::Response>> result;
    client->request(method, target, [&](Result<ari::Response> r) { result.emplace(std::move(r)); }, std::move(body));
    EXPECT_TRUE(run_until([&] { return result.has_value(); })) << target;
    if (!result) return Error{"test.no_reply", "no callback", target};
    return std::move(*result);
  }

  asio::io_context io;
  AriServer server{io};
  ari::Client::Options options;
  std::unique_ptr<ari::Client> client;
  int opened = 0;
  std::vector<json::object> events;
  std::vector<Error> closed;
  std::vector<Error> malformed;
};

// --- REST ---------------------------------------------------------------------------

TEST_F(AriClientTest, AsteriskInfoIsParsedAndTheRequestCarriesTheRecordedAuthorization) {
  make_client();
  auto reply = call(http::verb::get, "/ari/asterisk/info");
  ASSERT_TRUE(reply.ok()) << reply.error().describe();
  EXPECT_EQ(reply->status, 200U);
  EXPECT_EQ(reply->body.at("system").at("version"), "23.4.1");
  ASSERT_EQ(server.seen.size(), 1U);
  EXPECT_EQ(server.seen[0].method, "GET");
  EXPECT_EQ(server.seen[0].target, "/ari/asterisk/info");
  EXPECT_EQ(server.seen[0].host, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(server.seen[0].authorization,
            recorded_request_header("ari-http-basics.http.jsonl", "asterisk info", "Authorization"));
}

TEST_F(AriClientTest, WrongPasswordIsUnauthorizedWithAsterisksMessage) {
  server.rest = [](const Seen&, int) {
    return Step{Act::answer, recorded_response("ari-http-basics.http.jsonl", "bad password")};
  };
  make_client();
  auto reply = call(http::verb::get, "/ari/asterisk/info");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, "ari.unauthorized");
  EXPECT_EQ(reply.error().message, "Authentication required");
  EXPECT_EQ(reply.error().field, "GET /ari/asterisk/info");
}

TEST_F(AriClientTest, UnknownChannelIsNotFoundWithChannelNotFound) {
  server.rest = [](const Seen&, int) {
    return Step{Act::answer, recorded_response("ari-http-basics.http.jsonl", "unknown channel")};
  };
  make_client();
  auto reply = call(http::verb::get, "/ari/channels/no-such-channel");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, "ari.not_found");
  EXPECT_EQ(reply.error().message, "Channel not found");
  EXPECT_EQ(reply.error().field, "GET /ari/channels/no-such-channel");
}

// Every error reply of ari-errors (copied from the ari-record branch): the status, the
// code and Asterisk's own words, {"message": ...} or, for 500, {"error": ...}.
TEST_F(AriClientTest, RecordedErrorRepliesAreTypedWithAsterisksMessage) {
  struct Expected {
    const char* label;
    const char* code;
    const char* message;
  };
  const std::vector<Expected> expected{
      {"addChannel, not in Stasis", "ari.unprocessable", "Channel not in Stasis application"},
      {"answer, not in Stasis", "ari.conflict", "Channel not in Stasis application"},
      {"addChannel, no such channel", "ari.bad_request", "Channel not found"},
      {"addChannel, no such bridge", "ari.not_found", "Bridge not found"},
      {"originate with a channelId in use", "ari.conflict", "Channel with given unique ID already exists"},
      {"originate, unknown technology", "ari.server", "Allocation failed"},
      {"originate, endpoint without a slash", "ari.bad_request", "Invalid endpoint specified"},
      {"destroy bridge again (gone)", "ari.not_found", "Bridge not found"},
  };
  std::string label;
  server.rest = [&label](const Seen&, int) { return Step{Act::answer, recorded_response("ari-errors.http.jsonl", label)}; };
  make_client();
  for (const auto& e : expected) {
    label = e.label;
    auto reply = call(http::verb::post, "/ari/x");
    ASSERT_FALSE(reply.ok()) << e.label;
    EXPECT_EQ(reply.error().code, e.code) << e.label;
    EXPECT_EQ(reply.error().message, e.message) << e.label;
  }
  EXPECT_EQ(server.accepted, static_cast<int>(expected.size())) << "each reply said Connection: close";
}

TEST_F(AriClientTest, NoContentGivesStatus204AndANullBody) {
  server.rest = [](const Seen&, int) {
    return Step{Act::answer, recorded_response("ari-b-busy.http.jsonl", "add A to bridge")};
  };
  make_client();
  auto reply = call(http::verb::post, "/ari/bridges/b1/addChannel?channel=a1");
  ASSERT_TRUE(reply.ok()) << reply.error().describe();
  EXPECT_EQ(reply->status, 204U);
  EXPECT_TRUE(reply->body.is_null());
}

TEST_F(AriClientTest, UnreadableReplyIsAProtocolError) {
  server.rest = [](const Seen&, int) {
    std::string reply = recorded_response("ari-http-basics.http.jsonl", "list channels (idle)");
    reply.replace(reply.size() - 2, 2, "[{");  // same length, not JSON
    return Step{Act::answer, reply};
  };
  make_client();
  auto reply = call(http::verb::get, "/ari/channels");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, "ari.protocol");
  EXPECT_NE(reply.error().message.find("[{"), std::string::npos) << reply.error().message;
}

TEST_F(AriClientTest, JsonBodyIsSentAsApplicationJson) {
  server.rest = [](const Seen&, int) {
    return Step{Act::answer, recorded_response("ari-a-busy.http.jsonl", "originate A (busy)")};
  };
  make_client();
  const json::object variables{{"variables", json::object{{"CB_CALL_ID", "cb-ari-5"}}}};
  auto reply = call(http::verb::post, ari::with_query("/ari/channels", {{"endpoint", "Local/3003@phones"}}), variables);
  ASSERT_TRUE(reply.ok()) << reply.error().describe();
  EXPECT_EQ(reply->body.at("state"), "Down");
  ASSERT_EQ(server.seen.size(), 1U);
  EXPECT_EQ(server.seen[0].method, "POST");
  EXPECT_EQ(server.seen[0].content_type, "application/json");
  EXPECT_EQ(json::parse(server.seen[0].body), json::value(variables));
}

TEST_F(AriClientTest, ConnectionRefusedIsUnreachable) {
  std::uint16_t port = 0;
  {
    tcp::acceptor closed_port(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = closed_port.local_endpoint().port();
  }
  make_client(port);
  auto reply = call(http::verb::get, "/ari/asterisk/info");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, "ari.unreachable");
  EXPECT_NE(reply.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << reply.error().message;

  client->open();
  ASSERT_TRUE(run_until([&] { return !closed.empty(); }));
  EXPECT_EQ(closed[0].code, "ari.unreachable");
  EXPECT_EQ(opened, 0);
  EXPECT_FALSE(client->is_open());
}

TEST_F(AriClientTest, ConnectWithoutAnswerIsUnreachableAfterTheConnectTimeout) {
  // A listener with a full accept queue: Linux drops the SYN, so connect() hangs.
  tcp::acceptor full(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), true);
  full.listen(0);
  tcp::socket filler(io);
  filler.connect(full.local_endpoint());
  options.connect_timeout = 200ms;
  make_client(full.local_endpoint().port());
  auto reply = call(http::verb::get, "/ari/asterisk/info");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, "ari.unreachable");
  EXPECT_NE(reply.error().message.find("no answer within 200 ms"), std::string::npos) << reply.error().message;
}

TEST_F(AriClientTest, HostNameIsResolved) {
  ari::Client::Handlers none;
  client = std::make_unique<ari::Client>(io, ari::Endpoint{"localhost", server.port(), "callback", "callbacksecret"}, options,
                                         std::move(none));
  auto reply = call(http::verb::get, "/ari/asterisk/info");
  ASSERT_TRUE(reply.ok()) << reply.error().describe();
  ASSERT_EQ(server.seen.size(), 1U);
  EXPECT_EQ(server.seen[0].host, "localhost:" + std::to_string(server.port()));
}

TEST_F(AriClientTest, TargetThatCouldForgeAHeaderIsRefusedUnsent) {
  make_client();
  auto reply = call(http::verb::delete_, "/ari/channels/x HTTP/1.1\r\nX-Forged: 1");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, "ari.invalid_target");
  EXPECT_EQ(reply.error().field, "DELETE /ari/channels/x HTTP/1.1\\r\\nX-Forged: 1");
  auto relative = call(http::verb::get, "ari/asterisk/info");
  EXPECT_EQ(relative.ok() ? "" : relative.error().code, "ari.invalid_target");
  auto encoded = call(http::verb::delete_, "/ari/channels/" + ari::encode("x HTTP/1.1\r\nX-Forged: 1"));
  EXPECT_TRUE(encoded.ok());
  EXPECT_EQ(server.accepted, 1);
  ASSERT_EQ(server.seen.size(), 1U);
  EXPECT_EQ(server.seen[0].target, "/ari/channels/x%20HTTP%2F1.1%0D%0AX-Forged%3A%201");
}

TEST_F(AriClientTest, NoReplyWithinTheRequestTimeoutIsATimeout) {
  server.rest = [](const Seen&, int) { return Step{Act::silent, {}}; };
  options.request_timeout = 300ms;
  make_client();
  auto reply = call(http::verb::get, "/ari/asterisk/info");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, "ari.timeout");
  EXPECT_EQ(client->connection_count(), 0U) << "a connection whose reply is late cannot be reused";
  EXPECT_EQ(server.seen.size(), 1U);
}

TEST_F(AriClientTest, CloseCompletesRequestsInFlightAndQueuedWithClosed) {
  server.rest = [](const Seen&, int) { return Step{Act::silent, {}}; };
  server.events = {{WsStep::text, recorded_events("ari-a-busy.events.jsonl")[0]}};
  options.max_connections = 1;
  make_client();
  client->open();
  std::vector<Error> errors;
  auto record = [&](Result<ari::Response> r) { errors.push_back(r.ok() ? Error{"ok"} : r.error()); };
  client->request(http::verb::get, "/ari/channels", record);
  client->request(http::verb::delete_, "/ari/channels/c1", record);  // queued behind the first
  ASSERT_TRUE(run_until([&] { return server.seen.size() == 2 && !events.empty(); }));  // the upgrade and the GET
  client->close();
  ASSERT_EQ(errors.size(), 2U) << "before close() returns";
  EXPECT_EQ(errors[0].code, "ari.closed");
  EXPECT_EQ(errors[1].code, "ari.closed");
  EXPECT_EQ(errors[1].field, "DELETE /ari/channels/c1");
  EXPECT_FALSE(client->is_open());
  EXPECT_EQ(client->connection_count(), 0U);

  client->request(http::verb::get, "/ari/asterisk/info", record);
  EXPECT_EQ(errors.size(), 2U) << "never inside request()";
  drain();
  ASSERT_EQ(errors.size(), 3U);
  EXPECT_EQ(errors[2].code, "ari.closed");
  EXPECT_TRUE(closed.empty()) << "close() itself calls no closed handler";
  EXPECT_EQ(events.size(), 1U);
}

// An app taken over by another client (ApplicationReplaced): the engine drops only the
// WebSocket; REST calls in flight are no less valid and go on.
TEST_F(AriClientTest, DroppingTheEventsLeavesRequestsInFlightAndTheConnectionsAlone) {
  server.rest = [](const Seen& seen, int) {
    if (seen.target == "/ari/channels") return Step{Act::silent, {}};  // in flight until close()
    return Step{Act::answer, recorded_response("ari-http-basics.http.jsonl", "asterisk info")};
  };
  server.events = {{WsStep::text, recorded_events("ari-a-busy.events.jsonl")[0]}};
  make_client();
  client->open();
  std::optional<Result<ari::Response>> slow, quick;
  client->request(http::verb::get, "/ari/channels", [&](Result<ari::Response> r) { slow = std::move(r); });
  ASSERT_TRUE(run_until([&] { return server.seen.size() == 2 && !events.empty(); }));  // the upgrade and the GET
  client->drop_events();
  EXPECT_FALSE(client->is_open());
  // Had dropping failed the slow call, its completion would have run before this reply's.
  client->request(http::verb::get, "/ari/asterisk/info", [&](Result<ari::Response> r) { quick = std::move(r); });
  ASSERT_TRUE(run_until([&] { return quick.has_value(); }));
  EXPECT_TRUE(quick->ok());
  EXPECT_FALSE(slow.has_value()) << "still in flight";
  EXPECT_TRUE(closed.empty()) << "dropping the events is not losing them";
  client->open();
  ASSERT_TRUE(run_until([&] { return client->is_open(); })) << "a new WebSocket";
  client->close();
  ASSERT_TRUE(slow.has_value());
  EXPECT_EQ(slow->error().code, "ari.closed") << "it was in flight all along";
}

TEST_F(AriClientTest, DestroyingTheClientWithWorkPendingCallsNothing) {
  server.rest = [](const Seen&, int) { return Step{Act::silent, {}}; };
  make_client();
  client->open();
  int callbacks = 0;
  client->request(http::verb::get, "/ari/channels", [&](Result<ari::Response>) { ++callbacks; });
  ASSERT_TRUE(run_until([&] { return opened == 1 && server.seen.size() == 2; }));
  client->request(http::verb::get, "/ari/asterisk/info", [&](Result<ari::Response>) { ++callbacks; });
  client.reset();
  drain();
  EXPECT_EQ(callbacks, 0);
  EXPECT_TRUE(closed.empty());
}

TEST_F(AriClientTest, ACallbackMayDestroyTheClient) {
  server.rest = [](const Seen& request, int) {
    if (request.target == "/ari/channels") return Step{Act::silent, {}};
    return Step{Act::answer, recorded_response("ari-http-basics.http.jsonl", "asterisk info")};
  };
  make_client();
  int other = 0;
  bool first = false;
  client->request(http::verb::get, "/ari/channels", [&](Result<ari::Response>) { ++other; });
  client->request(http::verb::get, "/ari/asterisk/info", [&](Result<ari::Response> r) {
    first = r.ok();
    client.reset();
  });
  ASSERT_TRUE(run_until([&] { return first; }));
  EXPECT_EQ(client, nullptr);
  drain();
  EXPECT_EQ(other, 0);
}

// --- REST over the event WebSocket -------------------------------------------------

// Asterisk's RESTResponse to a request (ari-rest-websocket, recorded on 23.4.1) under the
// request_id this one carries.
std::string recorded_rest_response(const std::string& recorded_id, const std::string& request) {
  for (const auto& line : recorded_events("ari-rest-websocket.events.jsonl")) {
    auto reply = json::parse(line).as_object();
    if (reply["type"] != "RESTResponse" || reply["request_id"] != recorded_id.c_str()) continue;
    const auto sent = json::parse(request).as_object();
    const std::string id(sent.at("request_id").as_string());
    const std::string from = "\"request_id\":\"" + recorded_id + "\"";
    std::string text = line;
    text.replace(text.find(from), from.size(), "\"request_id\":\"" + id + "\"");
    return text;
  }
  ADD_FAILURE() << "no RESTResponse " << recorded_id << " in ari-rest-websocket";
  return {};
}

// Answers the probe and every request as Asterisk did: the ping, the 404 of a DELETE of a
// channel that is not there, or the 204 of a DELETE that was.
WsStep asterisk_23(const std::string& text) {
  const auto request = json::parse(text).as_object();
  if (request.at("request_id") == "callback-probe") return {WsStep::text, recorded_rest_response("callback-probe", text)};
  if (request.at("uri") == "channels/nope") return {WsStep::text, recorded_rest_response("hang-up-a-channel-that-is-not-there", text)};
  if (request.at("method") == "DELETE") return {WsStep::text, recorded_rest_response("hang-up-A", text)};
  return {WsStep::text, recorded_rest_response("many-1", text)};
}

struct AriWebSocketRest : AriClientTest {
  AriWebSocketRest() { options.rest_over_websocket = true; }
  void open_with_rest() {
    make_client();
    client->open();
    ASSERT_TRUE(run_until([&] { return client->rest_on_websocket(); })) << "the probe answered";
  }
};

TEST_F(AriWebSocketRest, OnceAsteriskAnswersTheProbeCallsGoAsFramesAndNoHttpConnectionIsMade) {
  server.on_text = asterisk_23;
  open_with_rest();
  ASSERT_EQ(server.texts.size(), 1u);
  EXPECT_EQ(server.texts[0], R"({"type":"RESTRequest","request_id":"callback-probe","method":"GET","uri":"asterisk/ping"})");
  auto ping = call(http::verb::get, "/ari/asterisk/ping");
  ASSERT_TRUE(ping.ok()) << ping.error().describe();
  EXPECT_EQ(ping->status, 200u);
  EXPECT_EQ(ping->body.as_object().at("ping"), "pong") << "message_body parsed from its string";
  auto gone = call(http::verb::delete_, "/ari/channels/cb-1-a?reason_code=16", json::object{{"x", 1}});
  ASSERT_TRUE(gone.ok()) << gone.error().describe();
  EXPECT_EQ(gone->status, 204u);
  EXPECT_TRUE(gone->body.is_null());
  ASSERT_EQ(server.texts.size(), 3u);
  const auto sent = json::parse(server.texts[2]).as_object();
  EXPECT_EQ(sent.at("method"), "DELETE");
  EXPECT_EQ(sent.at("uri"), "channels/cb-1-a?reason_code=16") << "relative to /ari/, the query kept";
  EXPECT_EQ(sent.at("content_type"), "application/json");
  EXPECT_EQ(sent.at("message_body"), R"({"x":1})") << "the body as a JSON string";
  EXPECT_EQ(server.seen.size(), 1u) << "only the upgrade: no REST over HTTP";
  EXPECT_EQ(client->connection_count(), 0u);
}

TEST_F(AriWebSocketRest, AnAsteriskThatIgnoresTheProbeGetsItsCallsOverHttp) {
  make_client();  // on_text answers nothing, as Asterisk before 20.14/21.9/22.4 does
  client->open();
  ASSERT_TRUE(run_until([&] { return server.texts.size() == 1; })) << "the probe went";
  auto info = call(http::verb::get, "/ari/asterisk/info");
  ASSERT_TRUE(info.ok()) << info.error().describe();
  EXPECT_FALSE(client->rest_on_websocket());
  ASSERT_EQ(server.seen.size(), 2u);
  EXPECT_EQ(server.seen[1].target, "/ari/asterisk/info");
  EXPECT_EQ(server.texts.size(), 1u) << "nothing but the probe on the WebSocket";
}

TEST_F(AriWebSocketRest, AnErrorReplyIsTypedWithAsterisksMessage) {
  server.on_text = asterisk_23;
  open_with_rest();
  auto gone = call(http::verb::delete_, "/ari/channels/nope");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, "ari.not_found");
  EXPECT_EQ(gone.error().message, "Channel not found");
  EXPECT_EQ(gone.error().field, "DELETE /ari/channels/nope");
}

TEST_F(AriWebSocketRest, ACallInFlightWhenTheWebSocketIsLostFailsAsUnreachableAndClosedIsCalledOnce) {
  server.on_text = [](const std::string& text) {
    if (json::parse(text).as_object().at("request_id") == "callback-probe") return asterisk_23(text);
    return WsStep{WsStep::hang_up, {}};  // the request read, then the connection gone
  };
  open_with_rest();
  auto lost = call(http::verb::post, "/ari/bridges/cb-1/addChannel?channel=cb-1-a,cb-1-b");
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code, "ari.unreachable");
  EXPECT_NE(lost.error().message.find("lost before Asterisk answered"), std::string::npos) << lost.error().message;
  ASSERT_TRUE(run_until([&] { return closed.size() == 1; }));
  EXPECT_FALSE(client->rest_on_websocket());
  // Without the WebSocket the next call goes over HTTP.
  auto info = call(http::verb::get, "/ari/asterisk/info");
  EXPECT_TRUE(info.ok());
  EXPECT_EQ(server.seen.back().target, "/ari/asterisk/info");
  client->close();
  EXPECT_EQ(closed.size(), 1u);
}

// ApplicationReplaced: Asterisk keeps the old WebSocket and answers there what it read on it.
TEST_F(AriWebSocketRest, DroppingTheEventsKeepsTheWebSocketForTheRepliesStillDueThenClosesIt) {
  server.on_text = [](const std::string& text) {
    if (json::parse(text).as_object().at("request_id") == "callback-probe") return asterisk_23(text);
    return WsStep{WsStep::raw, {}};  // answered later, by hand
  };
  open_with_rest();
  std::optional<Result<ari::Response>> due;
  client->request(http::verb::post, "/ari/bridges/cb-1/addChannel?channel=cb-1-a,cb-1-b",
                  [&](Result<ari::Response> r) { due = std::move(r); });
  ASSERT_TRUE(run_until([&] { return server.texts.size() == 2; }));
  client->drop_events();
  EXPECT_FALSE(client->is_open());
  EXPECT_FALSE(client->rest_on_websocket());
  // A call made now goes over HTTP.
  auto info = call(http::verb::get, "/ari/asterisk/info");
  EXPECT_TRUE(info.ok());
  EXPECT_EQ(server.seen.back().target, "/ari/asterisk/info");
  EXPECT_FALSE(due.has_value()) << "still due";
  EXPECT_EQ(server.closes, 0) << "the WebSocket stays for it";
  server.push_text(recorded_rest_response("add-A-and-B", server.texts[1]));
  ASSERT_TRUE(run_until([&] { return due.has_value(); }));
  ASSERT_TRUE(due->ok()) << due->error().describe();
  EXPECT_EQ((*due)->status, 204u);
  ASSERT_TRUE(run_until([&] { return server.closes == 1; })) << "closed once nothing is due on it";
  EXPECT_TRUE(closed.empty()) << "dropping is not losing";
}

TEST_F(AriWebSocketRest, NoReplyIsATimeoutAndCloseEndsTheOthersWithClosed) {
  server.on_text = [](const std::string& text) {
    if (json::parse(text).as_object().at("request_id") == "callback-probe") return asterisk_23(text);
    return WsStep{WsStep::raw, {}};  // never answered
  };
  options.request_timeout = 200ms;
  open_with_rest();
  auto late = call(http::verb::get, "/ari/asterisk/ping");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, "ari.timeout");
  std::optional<Result<ari::Response>> pending;
  client->request(http::verb::get, "/ari/channels", [&](Result<ari::Response> r) { pending = std::move(r); });
  ASSERT_TRUE(run_until([&] { return server.texts.size() == 3; }));
  client->close();
  ASSERT_TRUE(pending.has_value()) << "before close() returned";
  EXPECT_EQ(pending->error().code, "ari.closed");
}

TEST_F(AriWebSocketRest, AReplyForNoCallOrWithoutAStatusIsNotTakenForOne) {
  int n = 0;
  server.on_text = [&n](const std::string& text) {
    if (json::parse(text).as_object().at("request_id") == "callback-probe") return asterisk_23(text);
    // First a reply to a request nobody made, then one without status_code: neither is an
    // event, and the second ends the call as a protocol error.
    ++n;
    auto reply = json::parse(asterisk_23(text).bytes).as_object();
    if (n == 1) {
      reply["request_id"] = "9999";
    } else {
      reply.erase("status_code");
    }
    return WsStep{WsStep::text, json::serialize(reply)};
  };
  options.request_timeout = 300ms;
  open_with_rest();
  auto first = call(http::verb::get, "/ari/asterisk/ping");
  EXPECT_EQ(first.error().code, "ari.timeout") << "the reply named another request";
  auto second = call(http::verb::get, "/ari/asterisk/ping");
  EXPECT_EQ(second.error().code, "ari.protocol");
  EXPECT_TRUE(events.empty()) << "RESTResponse frames are not events";
  EXPECT_TRUE(malformed.empty());
}

// --- keep-alive ---------------------------------------------------------------------

TEST_F(AriClientTest, KeptAliveConnectionServesTheNextRequest) {
  server.rest = [](const Seen&, int) {
    return Step{Act::answer, kept_alive(recorded_response("ari-http-basics.http.jsonl", "asterisk info"))};
  };
  make_client();
  ASSERT_TRUE(call(http::verb::get, "/ari/asterisk/info").ok());
  EXPECT_EQ(client->connection_count(), 1U);
  ASSERT_TRUE(call(http::verb::get, "/ari/asterisk/info").ok());
  EXPECT_EQ(server.accepted, 1);
  ASSERT_EQ(server.seen.size(), 2U);
  EXPECT_EQ(server.seen[1].connection, 1);
}

TEST_F(AriClientTest, ConnectionCloseInTheReplyEndsTheConnection) {
  make_client();  // the recorded reply says "Connection: close"
  ASSERT_TRUE(call(http::verb::get, "/ari/asterisk/info").ok());
  EXPECT_EQ(client->connection_count(), 0U);
  ASSERT_TRUE(call(http::verb::get, "/ari/asterisk/info").ok());
  EXPECT_EQ(server.accepted, 2);
}

TEST_F(AriClientTest, RequestsBeyondMaxConnectionsWaitForAFreeOne) {
  server.rest = [](const Seen&, int) {
    return Step{Act::answer, kept_alive(recorded_response("ari-http-basics.http.jsonl", "asterisk ping"))};
  };
  options.max_connections = 2;
  make_client();
  int ok = 0;
  int done = 0;
  for (int i = 0; i < 7; ++i) {
    client->request(http::verb::get, "/ari/asterisk/ping", [&](Result<ari::Response> r) {
      ++done;
      if (r.ok() && r->body.at("ping") == "pong") ++ok;
    });
  }
  EXPECT_LE(client->connection_count(), 2U);
  ASSERT_TRUE(run_until([&] { return done == 7; }));
  EXPECT_EQ(ok, 7);
  EXPECT_EQ(server.accepted, 2);
  EXPECT_EQ(server.seen.size(), 7U);
}

TEST_F(AriClientTest, IdleConnectionClosedByTheServerIsReopened) {
  // Asterisk's session_keep_alive: the reply keeps the connection, then the server drops it.
  server.rest = [](const Seen&, int) {
    return Step{Act::answer_then_hang_up, kept_alive(recorded_response("ari-http-basics.http.jsonl", "asterisk info"))};
  };
  make_client();
  ASSERT_TRUE(call(http::verb::get, "/ari/asterisk/info").ok());
  ASSERT_TRUE(run_until([&] { return client->connection_count() == 0; })) << "the client notices the close";
  auto again = call(http::verb::get, "/ari/asterisk/info");
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_EQ(server.accepted, 2);
  EXPECT_EQ(server.seen.size(), 2U);
}

TEST_F(AriClientTest, StaleKeptAliveConnectionIsRetriedOnceOnANewOne) {
  // The race with session_keep_alive: the second request goes out on the old connection
  // just as Asterisk closes it; no byte of a reply comes back.
  server.rest = [](const Seen& request, int on_connection) {
    if (request.connection == 1 && on_connection == 2) return Step{Act::hang_up, {}};
    return Step{Act::answer, kept_alive(recorded_response("ari-http-basics.http.jsonl", "asterisk info"))};
  };
  make_client();
  ASSERT_TRUE(call(http::verb::get, "/ari/asterisk/info").ok());
  auto second = call(http::verb::get, "/ari/asterisk/ping");
  ASSERT_TRUE(second.ok()) << second.error().describe();
  EXPECT_EQ(server.accepted, 2);
  ASSERT_EQ(server.seen.size(), 3U);
  EXPECT_EQ(server.seen[2].connection, 2);
  EXPECT_EQ(server.seen[2].target, "/ari/asterisk/ping");
}

TEST_F(AriClientTest, RetryGoesOnANewConnectionNotAnotherKeptOne) {
  // Two kept connections; each drops its second request unanswered (both went stale).
  server.rest = [](const Seen&, int on_connection) {
    if (on_connection > 1) return Step{Act::hang_up, {}};
    return Step{Act::answer, kept_alive(recorded_response("ari-http-basics.http.jsonl", "asterisk info"))};
  };
  options.max_connections = 2;
  make_client();
  int answered = 0;
  for (int i = 0; i < 2; ++i) {
    client->request(http::verb::get, "/ari/asterisk/info", [&](Result<ari::Response> r) { answered += r.ok() ? 1 : 0; });
  }
  ASSERT_TRUE(run_until([&] { return answered == 2; }));
  ASSERT_EQ(client->connection_count(), 2U);
  auto reply = call(http::verb::get, "/ari/asterisk/ping");
  ASSERT_TRUE(reply.ok()) << reply.error().describe();
  EXPECT_EQ(server.accepted, 3);
  ASSERT_EQ(server.seen.size(), 4U);
  EXPECT_EQ(server.seen[3].connection, 3);
  EXPECT_LE(client->connection_count(), 2U);
}

TEST_F(AriClientTest, RequestIsRetriedOnlyOnce) {
  server.rest = [](const Seen&, int) {
    return Step{Act::answer, kept_alive(recorded_response("ari-http-basics.http.jsonl", "asterisk info"))};
  };
  make_client();
  ASSERT_TRUE(call(http::verb::get, "/ari/asterisk/info").ok());
  // From now on every request is dropped unanswered: the kept connection's, then the
  // retry's on a fresh connection, which is not retried again.
  server.rest = [](const Seen&, int) { return Step{Act::hang_up, {}}; };
  auto reply = call(http::verb::get, "/ari/channels");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, "ari.unreachable");
  EXPECT_EQ(server.accepted, 2) << "one retry, not more";
  EXPECT_EQ(server.seen.size(), 3U);
}

// --- events -------------------------------------------------------------------------

TEST_F(AriClientTest, EventsArriveInOrderParsed) {
  const auto recorded = recorded_events("ari-a-busy.events.jsonl");
  for (const auto& text : recorded) server.events.push_back({WsStep::text, text});
  make_client();
  client->open();
  ASSERT_TRUE(run_until([&] { return events.size() == recorded.size(); }));
  EXPECT_EQ(opened, 1);
  EXPECT_TRUE(client->is_open());
  for (std::size_t i = 0; i < recorded.size(); ++i) EXPECT_EQ(events[i], json::parse(recorded[i]).as_object()) << i;
  EXPECT_EQ(events[2].at("type"), "Dial");
  ASSERT_EQ(server.seen.size(), 1U);
  EXPECT_TRUE(server.seen[0].upgrade);
  EXPECT_EQ(server.seen[0].target, "/ari/events?app=callback-app&subscribeAll=false");
  EXPECT_EQ(server.seen[0].authorization,
            recorded_request_header("ari-http-basics.http.jsonl", "asterisk info", "Authorization"));
  EXPECT_TRUE(closed.empty());
}

TEST_F(AriClientTest, MalformedFramesAreReportedEscapedAndTheNextEventStillArrives) {
  const auto recorded = recorded_events("ari-a-busy.events.jsonl");
  const std::string long_garbage = "\x1b[2J" + std::string(5000, 'x');
  server.events = {{WsStep::text, recorded[0]},
                   {WsStep::text, R"({"type":"Dial",)"},
                   {WsStep::text, "[1,2]"},
                   {WsStep::text, long_garbage},
                   {WsStep::text, recorded[1]}};
  make_client();
  client->open();
  ASSERT_TRUE(run_until([&] { return events.size() == 2; }));
  ASSERT_EQ(malformed.size(), 3U);
  EXPECT_EQ(malformed[0].code, "ari.protocol");
  EXPECT_NE(malformed[0].message.find(R"({"type":"Dial",)"), std::string::npos) << malformed[0].message;
  EXPECT_NE(malformed[1].message.find("not a JSON object"), std::string::npos) << malformed[1].message;
  EXPECT_EQ(malformed[2].message.find('\x1b'), std::string::npos);
  EXPECT_NE(malformed[2].message.find(R"(\x1b[2J)"), std::string::npos);
  EXPECT_LT(malformed[2].message.size(), 400U) << "cut to about 200 bytes of the frame";
  EXPECT_EQ(events[1], json::parse(recorded[1]).as_object());
  EXPECT_TRUE(client->is_open());
  EXPECT_TRUE(closed.empty());
}

TEST_F(AriClientTest, ServerClosingMidFrameGivesClosedOnce) {
  const auto recorded = recorded_events("ari-a-busy.events.jsonl");
  server.events = {{WsStep::text, recorded[0]},
                   {WsStep::raw, frame(recorded[1]).substr(0, 3)},  // FIN|text, 126, one byte of the length
                   {WsStep::hang_up, {}}};
  make_client();
  client->open();
  ASSERT_TRUE(run_until([&] { return !closed.empty(); }));
  EXPECT_EQ(events.size(), 1U);
  EXPECT_EQ(closed[0].code, "ari.unreachable");
  EXPECT_FALSE(client->is_open());
  drain();
  EXPECT_EQ(closed.size(), 1U);
  EXPECT_EQ(opened, 1);
}

TEST_F(AriClientTest, CloseFrameFromTheServerGivesClosed) {
  server.events = {{WsStep::raw, frame(std::string("\x03\xe9", 2) + "shutting down", 0x8)}};  // 1001 going away
  make_client();
  client->open();
  ASSERT_TRUE(run_until([&] { return !closed.empty(); }));
  EXPECT_EQ(closed[0].code, "ari.unreachable");
  EXPECT_NE(closed[0].message.find("1001"), std::string::npos) << closed[0].message;
  EXPECT_NE(closed[0].message.find("shutting down"), std::string::npos) << closed[0].message;
}

TEST_F(AriClientTest, RefusedHandshakeSaysTheStatus) {
  server.refuse_upgrade = recorded_response("ari-http-basics.http.jsonl", "bad password");
  make_client();
  client->open();
  ASSERT_TRUE(run_until([&] { return !closed.empty(); }));
  EXPECT_EQ(opened, 0);
  EXPECT_EQ(closed[0].code, "ari.unauthorized");
  EXPECT_NE(closed[0].message.find("HTTP 401 Unauthorized"), std::string::npos) << closed[0].message;
  EXPECT_NE(closed[0].message.find("Authentication required"), std::string::npos) << closed[0].message;
  EXPECT_NE(closed[0].message.find("callback-app"), std::string::npos) << closed[0].message;
  EXPECT_FALSE(client->is_open());
}

TEST_F(AriClientTest, RefusedHandshakeForABadAppSaysTheStatus) {
  server.refuse_upgrade = derived_reply("HTTP/1.1 400 Bad Request", R"({"message":"Invalid application provided in param [app]."})");
  make_client();
  client->open();
  ASSERT_TRUE(run_until([&] { return !closed.empty(); }));
  EXPECT_EQ(closed[0].code, "ari.bad_request");
  EXPECT_NE(closed[0].message.find("HTTP 400 Bad Request"), std::string::npos) << closed[0].message;
  EXPECT_NE(closed[0].message.find("Invalid application"), std::string::npos) << closed[0].message;
}

TEST_F(AriClientTest, SilentEventServerIsNoticedByTheIdleTimeout) {
  options.event_idle_timeout = 400ms;  // the server never answers Beast's ping
  make_client();
  client->open();
  ASSERT_TRUE(run_until([&] { return !closed.empty(); }));
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(closed[0].code, "ari.timeout");
}

TEST_F(AriClientTest, OpenAgainAfterClosed) {
  server.events = {{WsStep::hang_up, {}}};
  make_client();
  client->open();
  ASSERT_TRUE(run_until([&] { return closed.size() == 1; }));
  server.events = {{WsStep::text, recorded_events("ari-a-busy.events.jsonl")[0]}};
  client->open();
  ASSERT_TRUE(run_until([&] { return events.size() == 1; }));
  EXPECT_EQ(opened, 2);
  EXPECT_TRUE(client->is_open());
}

// --- queries ------------------------------------------------------------------------

TEST(AriWithQuery, PercentEncodesAllButUnreserved) {
  EXPECT_EQ(ari::with_query("/ari/channels", {{"endpoint", "Local/1001@phones"}, {"callerId", "\"Callback\" <1001>"}}),
            "/ari/channels?endpoint=Local%2F1001%40phones&callerId=%22Callback%22%20%3C1001%3E");
  EXPECT_EQ(ari::with_query("/ari/channels/a/dial", {{"caller", "cb-1_a.~"}, {"timeout", "30"}}),
            "/ari/channels/a/dial?caller=cb-1_a.~&timeout=30");
  EXPECT_EQ(ari::with_query("/x?y=1", {{"name", "\xe5\x90\x8d"}}), "/x?y=1&name=%E5%90%8D");
  EXPECT_EQ(ari::with_query("/x", {{"a&b", "c=d+e"}}), "/x?a%26b=c%3Dd%2Be");
  EXPECT_EQ(ari::with_query("/x", {}), "/x");
}

TEST(AriEncode, KeepsOnlyUnreserved) {
  EXPECT_EQ(ari::encode("1795672242.76"), "1795672242.76");
  EXPECT_EQ(ari::encode("cb-ari-11_a~"), "cb-ari-11_a~");
  EXPECT_EQ(ari::encode("a/b c?d#e%f"), "a%2Fb%20c%3Fd%23e%25f");
  EXPECT_EQ(ari::encode(std::string("\0\x7f", 2)), "%00%7F");
}

TEST(AriQuoteUntrusted, EscapesAndCutsOnACharacterBoundary) {
  EXPECT_EQ(ari::quote_untrusted("a\r\nb"), "a\\r\\nb");
  const std::string text = std::string(9, 'x') + "\xe5\x90\x8d";  // a 3-byte character across the cut at 10
  EXPECT_EQ(ari::quote_untrusted(text, 10), std::string(9, 'x') + "...");
}

}  // namespace
