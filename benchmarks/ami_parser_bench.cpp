// AMI parser throughput over every transcript a real Asterisk sent (aim: >= 500 MB/s on
// one core). Run: build-release/bin/ami_parser_bench
#include "ami_codec.hpp"

#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

// All recorded server bytes as one stream: one banner, then every message of every file.
std::string corpus() {
  const std::string banner = "Asterisk Call Manager/12.0.0\r\n";
  std::string all = banner;
  for (const auto& entry : std::filesystem::directory_iterator(CALLBACK_ASTERISK_RECORDINGS)) {
    const auto name = entry.path().filename().string();
    if (!name.starts_with("ami-") || !name.ends_with(".txt") || name.ends_with(".sent.txt")) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    all += text.str().substr(banner.size());
  }
  return all;
}

void parse(benchmark::State& state, std::size_t chunk) {
  const std::string bytes = corpus();
  std::size_t messages = 0;
  for (auto _ : state) {
    callback::ami::Parser parser;
    for (std::size_t at = 0; at < bytes.size(); at += chunk) {
      auto ok = parser.feed(std::string_view(bytes).substr(at, chunk), [&](const callback::ami::MessageView& m) {
        messages += m.headers().size() > 0;
        benchmark::DoNotOptimize(m.get("Uniqueid"));
      });
      if (!ok) state.SkipWithError(ok.error().message.c_str());
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
  state.counters["messages/s"] = benchmark::Counter(static_cast<double>(messages), benchmark::Counter::kIsRate);
}

// 64 KiB: what one socket read brings under load. 1460: one TCP segment (a message often
// straddles two reads, so the carry-over path is measured too).
void BM_AmiParse64K(benchmark::State& state) { parse(state, 65536); }
void BM_AmiParse1460(benchmark::State& state) { parse(state, 1460); }
BENCHMARK(BM_AmiParse64K);
BENCHMARK(BM_AmiParse1460);

}  // namespace

BENCHMARK_MAIN();
