// pistache_trivial: the smallest Pistache 0.0.5 server, as the baseline the REST figures
// (issue 5) are reported next to. Same Endpoint options as callbackd (rest/server.cpp):
// N reactor threads, ReuseAddr, a keep-alive timeout, the same request-size cap.
//
//   pistache_trivial [--port N] [--threads N]      (port 0, the default: any free port)
//
// GET /hello and POST /hello answer 200 with a small JSON body (Content-Type set, as
// callbackd does); anything else 404. Prints "listening on http://127.0.0.1:PORT/" once
// it serves; stops on SIGTERM or SIGINT.
#include "daemon.hpp"

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

namespace {

using Pistache::Http::Code;
using Pistache::Http::Method;

class Hello final : public Pistache::Http::Handler {
 public:
  HTTP_PROTOTYPE(Hello)
  void onRequest(const Pistache::Http::Request& request, Pistache::Http::ResponseWriter response) override {
    response.headers().add<Pistache::Http::Header::ContentType>(Pistache::Http::Mime::MediaType("application/json"));
    if (request.resource() != "/hello") {
      response.send(Code::Not_Found, R"({"error":{"code":"not_found","message":"no such endpoint","field":"path"}})");
      return;
    }
    if (request.method() == Method::Get) {
      response.send(Code::Ok, R"({"hello":"world","id":"cb-000000-1","state":"completed"})");
    } else if (request.method() == Method::Post) {
      // Echo the body's size so the body is read; 202 as POST /v1/callbacks answers.
      response.send(Code::Accepted, R"({"hello":"posted","bytes":)" + std::to_string(request.body().size()) + "}");
    } else {
      response.send(Code::Method_Not_Allowed, R"({"error":{"code":"method_not_allowed","message":"use GET, POST"}})");
    }
  }
};

int usage() {
  std::cerr << "usage: pistache_trivial [--port N] [--threads N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--port" || arg == "--threads") && i + 1 < argc) {
      (arg == "--port" ? port : threads) = std::atoi(argv[++i]);
    } else if (arg == "--help" || arg == "-h") {
      std::cout << "usage: pistache_trivial [--port N] [--threads N]\n";
      return 0;
    } else {
      return usage();
    }
  }
  if (port < 0 || port > 65535 || threads < 1 || threads > 64) return usage();

  // Signals go to the main thread only: block them before the reactor threads start.
  sigset_t signals = callback::rest::block_stop_signals();

  Pistache::Http::Endpoint endpoint(Pistache::Address("127.0.0.1", Pistache::Port(static_cast<std::uint16_t>(port))));
  auto opts = Pistache::Http::Endpoint::options()
                  .threads(threads)
                  .flags(Pistache::Tcp::Options::ReuseAddr)
                  .maxRequestSize(16 * 1024 + 8192)
                  .keepaliveTimeout(std::chrono::seconds(60));
  endpoint.init(opts);
  endpoint.setHandler(Pistache::Http::make_handler<Hello>());
  endpoint.serveThreaded();
  std::cout << "listening on http://127.0.0.1:" << static_cast<std::uint16_t>(endpoint.getPort()) << "/" << std::endl;

  int received = 0;
  sigwait(&signals, &received);
  endpoint.shutdown();
  return 0;
}
