// Foundation figures: parsing what people type, reading config, finding plugins.
// Run: build-release/bin/foundation_bench
#include <callback/config.hpp>
#include <callback/money.hpp>
#include <callback/phone_number.hpp>
#include <callback/plugin_loader.hpp>

#include <benchmark/benchmark.h>

namespace {

const callback::NumberingPlan china{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};

void BM_PhoneNumberParse(benchmark::State& state) {
  const char* inputs[] = {"+86 10 5555 6666", "0086-10-55556666", "010-5555 6666", "13800138000"};
  std::size_t i = 0;
  for (auto _ : state) {
    auto n = callback::PhoneNumber::parse(inputs[i++ & 3], china);
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PhoneNumberParse);

void BM_MoneyParse(benchmark::State& state) {
  const auto cny = callback::Currency::of("CNY").value();
  for (auto _ : state) {
    auto m = callback::Money::parse("1234.56", cny);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MoneyParse);

void BM_ParseConfig(benchmark::State& state) {
  const std::string text = R"({
    // a typical deployment
    "numbering": {"country_code": "86", "trunk_prefix": "0", "international_prefixes": ["00"]},
    "store": {"plugin": "callback.store.sqlite", "config": {"path": "/var/lib/callback/callback.db"}},
    "billing": {"plugin": "callback.billing.sqlite"},
    "engines": [{"plugin": "callback.engine.ami", "name": "ast1", "config": {"host": "10.0.0.1", "port": 5038}},
                {"plugin": "callback.engine.ami", "name": "ast2", "config": {"host": "10.0.0.2", "port": 5038}}],
    "triggers": [{"plugin": "callback.trigger.web"}, {"plugin": "callback.trigger.sms"}],
    "log": {"level": "info"}
  })";
  for (auto _ : state) {
    auto config = callback::parse_config(text);
    benchmark::DoNotOptimize(config);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseConfig);

// What `plugins list` does per file before loading: read the descriptor from the ELF file.
void BM_ReadPluginDescriptor(benchmark::State& state) {
  callback::PluginLoader loader;
  auto plugin = loader.find("callback.store.sqlite");
  if (!plugin) {
    state.SkipWithError(plugin.error().describe().c_str());
    return;
  }
  const auto path = (*plugin)->info.path;
  for (auto _ : state) {
    auto info = callback::read_plugin_descriptor(path);
    benchmark::DoNotOptimize(info);
  }
}
BENCHMARK(BM_ReadPluginDescriptor);

// A fresh loader discovering and loading every plugin of the tree (dlopen included).
void BM_DiscoverAndLoadAllPlugins(benchmark::State& state) {
  for (auto _ : state) {
    callback::PluginLoader loader;
    auto found = loader.discover(true);
    benchmark::DoNotOptimize(found);
  }
}
BENCHMARK(BM_DiscoverAndLoadAllPlugins)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
