// Server-Sent Events: a callback's states as they happen, until the final one
// (GET /v1/callbacks/{id}/events, and the web page's stream through its route).
#include "state.hpp"

#include <pistache/peer.h>

#include <charconv>

namespace callback::rest {

namespace {

// One HTTP/1.1 chunk.
std::string chunk(std::string_view data) {
  char size[20];
  auto [end, ec] = std::to_chars(size, size + sizeof size, data.size(), 16);
  (void)ec;
  std::string out(size, end);
  out += "\r\n";
  out += data;
  out += "\r\n";
  return out;
}

}  // namespace

void RestServer::State::stream_events(const std::string& id, ResponseWriter& response, const ApiKeyInfo* key) {
  if (!visible(id, key)) return reply(response, error_reply(no_callback(id)));
  requests_ok.add();
  // Pistache 0.0.5's ResponseStream::flush() empties the transport's whole write queue
  // (every connection's) on the calling thread. From the service thread that races with
  // the reactor; on the reactor thread it still empties the queue of a connection whose
  // "writable" event epoll has already handed out, and that event then aborts callbackd
  // ("could not find write data": benchmarks/soak.py hit it within minutes). So nothing
  // here flushes: the head, like every frame, goes through Peer::send, which only queues,
  // and the frames are HTTP/1.1 chunks written by hand.
  std::weak_ptr<Pistache::Tcp::Peer> peer = response.peer();
  response.timeout().disarm();  // as ResponseStream::flush() did
  {
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    response.peer()->send(Pistache::RawBuffer(head, head.size()));
  }
  auto subscriber = std::make_shared<Subscriber>();
  subscriber->send = [peer](const std::string& frame) {
    auto alive = peer.lock();
    if (!alive) return false;  // the client went away
    const std::string bytes = chunk(frame);
    alive->send(Pistache::RawBuffer(bytes, bytes.size()));
    return true;
  };
  subscriber->close = [peer] {
    if (auto alive = peer.lock()) {
      alive->send(Pistache::RawBuffer(std::string("0\r\n\r\n"), 5));
      alive->setIdle(true);  // answered whole: the connection's next request may follow (http_guard.hpp)
    }
  };
  if (registry.subscribe(id, subscriber)) return;
  // Another node's: followed through the shared journal's notices. Read again once
  // followed, so that a change between the first read and the following is not missed.
  if (auto remote = from_journal(id)) {
    registry.follow_remote(*remote, subscriber);
    if (auto again = from_journal(id)) registry.remote_changed(*again);
    return;
  }
  subscriber->close();  // gone since the check above
}

}  // namespace callback::rest
