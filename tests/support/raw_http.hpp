#pragma once
// An HTTP client that writes exactly the bytes it is given, as a hostile or broken client
// would (bad framing, bare LF, pipelined requests in one send), then reads the answers
// over a plain TCP socket. Reads are bounded by poll() with a deadline, so a server that
// never answers fails the test instead of hanging it.
//
//   auto got = test::raw_http(port, "GET /\r\n", {.responses = 1, .until_closed = true});
//   EXPECT_EQ(got.responses.at(0).status, 505);
//   EXPECT_TRUE(got.closed);
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace callback::test {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct RawExchange {
  std::vector<RawResponse> responses;  // the whole ones, in the order they came
  bool closed = false;                 // the server closed the connection
  std::string bytes;                   // everything read
};

struct RawOptions {
  std::size_t responses = 1;  // stop once this many whole responses came...
  bool until_closed = false;  // ...and, if set, the server closed the connection
  std::chrono::milliseconds deadline{10'000};  // failure guard: give up after this long
};

// The whole responses at the start of `bytes` (each framed by its Content-Length).
inline std::vector<RawResponse> split_responses(std::string_view bytes) {
  std::vector<RawResponse> out;
  while (true) {
    const auto end = bytes.find("\r\n\r\n");
    if (end == std::string_view::npos) break;
    RawResponse r;
    std::string_view head = bytes.substr(0, end);
    const auto first = head.find("\r\n");
    const std::string_view status_line = head.substr(0, first);
    if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.")) break;
    r.status = std::stoi(std::string(status_line.substr(9, 3)));
    head = first == std::string_view::npos ? std::string_view{} : head.substr(first + 2);
    while (!head.empty()) {
      const auto eol = head.find("\r\n");
      const std::string_view line = head.substr(0, eol);
      const auto colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string name(line.substr(0, colon));
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        r.headers[name] = std::string(value);
      }
      if (eol == std::string_view::npos) break;
      head.remove_prefix(eol + 2);
    }
    const std::size_t length = r.headers.contains("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    if (bytes.size() < end + 4 + length) break;
    r.body = std::string(bytes.substr(end + 4, length));
    bytes.remove_prefix(end + 4 + length);
    out.push_back(std::move(r));
  }
  return out;
}

// Connects to 127.0.0.1:port, writes `request` in one send, reads as `options` says.
inline RawExchange raw_http(std::uint16_t port, std::string_view request, RawOptions options = {}) {
  RawExchange got;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return got;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return got;
  }
  const auto give_up = std::chrono::steady_clock::now() + options.deadline;
  auto done = [&] { return got.responses.size() >= options.responses && (!options.until_closed || got.closed); };
  while (!done()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) {
      got.closed = true;
      break;
    }
    got.bytes.append(buffer, static_cast<std::size_t>(n));
    got.responses = split_responses(got.bytes);
  }
  ::close(fd);
  return got;
}

}  // namespace callback::test
