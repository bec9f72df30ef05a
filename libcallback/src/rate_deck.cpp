#include <callback/csv.hpp>
#include <callback/rate_deck.hpp>
#include <callback/timestamp.hpp>

#include <algorithm>
#include <bit>
#include <cctype>
#include <ctime>
#include <istream>
#include <iterator>
#include <map>

namespace callback {
namespace {

enum class Column {
  prefix, description, rate, increment, initial_increment, subsequent_increment, connection_fee,
  minimum_duration, effective_from, weekdays, hours
};

constexpr std::pair<std::string_view, Column> column_names[] = {
    {"prefix", Column::prefix},
    {"dialprefix", Column::prefix},
    {"description", Column::description},
    {"destination", Column::description},
    {"rate", Column::rate},
    {"price", Column::rate},
    {"increment", Column::increment},
    {"billing_increment", Column::increment},
    {"initial_increment", Column::initial_increment},
    {"subsequent_increment", Column::subsequent_increment},
    {"connection_fee", Column::connection_fee},
    {"setup_fee", Column::connection_fee},
    {"minimum_duration", Column::minimum_duration},
    {"effective_from", Column::effective_from},
    {"effective_date", Column::effective_from},
    {"weekdays", Column::weekdays},
    {"days", Column::weekdays},
    {"hours", Column::hours},
};
constexpr Column positional[] = {Column::prefix,         Column::description,      Column::rate,
                                 Column::increment,      Column::connection_fee,   Column::minimum_duration,
                                 Column::effective_from, Column::weekdays,         Column::hours};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

Error row_error(std::size_t line, std::string_view column, const std::string& message) {
  return Error{"invalid_rate_deck", std::string(column) + ": " + message, "line " + std::to_string(line)};
}

std::optional<int> small_number(std::string_view s, int max) {
  if (s.empty() || s.size() > 6) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

std::optional<int> weekday_index(std::string_view name) {
  static constexpr std::string_view days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  const auto l = lower(name);
  for (int i = 0; i < 7; ++i) {
    if (l == days[i]) return i;
  }
  return std::nullopt;
}

std::optional<std::uint8_t> parse_weekdays(std::string_view text) {
  const auto l = lower(trim(text));
  if (l.empty() || l == "all") return 0x7f;
  std::uint8_t mask = 0;
  std::size_t pos = 0;
  while (pos <= l.size()) {
    const auto bar = l.find_first_of("|/", pos);
    const std::string_view part = std::string_view(l).substr(pos, bar == std::string::npos ? std::string::npos : bar - pos);
    const auto dash = part.find('-');
    auto from = weekday_index(part.substr(0, dash));
    auto to = dash == std::string_view::npos ? from : weekday_index(part.substr(dash + 1));
    if (!from || !to) return std::nullopt;
    for (int d = *from;; d = (d + 1) % 7) {
      mask = static_cast<std::uint8_t>(mask | (1u << d));
      if (d == *to) break;
    }
    if (bar == std::string::npos) break;
    pos = bar + 1;
  }
  return mask;
}

std::optional<int> minute_of_day(std::string_view hhmm) {
  if (hhmm.size() != 5 || hhmm[2] != ':') return std::nullopt;
  auto h = small_number(hhmm.substr(0, 2), 24);
  auto m = small_number(hhmm.substr(3, 2), 59);
  if (!h || !m || (*h == 24 && *m != 0)) return std::nullopt;
  return *h * 60 + *m;
}

std::optional<Timestamp> parse_date(std::string_view text) { return parse_timestamp(text); }

}  // namespace

bool deck_order(const RateLine& a, const RateLine& b) noexcept {
  if (a.rate.prefix != b.rate.prefix) return a.rate.prefix < b.rate.prefix;
  if (a.effective_from != b.effective_from) return a.effective_from > b.effective_from;  // latest first
  return std::tie(a.weekdays, a.start_minute, a.end_minute, a.line) <
         std::tie(b.weekdays, b.start_minute, b.end_minute, b.line);
}

bool RateLine::applies_at(Timestamp at) const noexcept {
  if (always()) return true;
  if (at < effective_from) return false;
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count();
  const auto days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  const int weekday = static_cast<int>(((days % 7) + 7 + 3) % 7);  // 1970-01-01 was a Thursday (3)
  if (((weekdays >> weekday) & 1u) == 0) return false;
  const int minute = static_cast<int>(((seconds % 86400) + 86400) % 86400 / 60);
  if (start_minute <= end_minute) return minute >= start_minute && minute < end_minute;
  return minute >= start_minute || minute < end_minute;  // crosses midnight
}

Result<std::vector<RateLine>> parse_rate_csv(std::istream& in, const Currency& currency, RateDeckLimits limits) {
  // The whole file at once: one read, and the row count known before parsing, so the
  // lines are allocated once (no doubling: a 1M-row deck would peak at twice its size).
  const std::string content{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return parse_rate_csv(std::string_view(content), currency, limits);
}

Result<std::vector<RateLine>> parse_rate_csv(std::string_view content, const Currency& currency, RateDeckLimits limits) {
  std::vector<RateLine> lines;
  std::vector<std::string> fields;
  std::vector<Column> columns;
  lines.reserve(static_cast<std::size_t>(std::count(content.begin(), content.end(), '\n')) + 1);
  CsvReader csv(content, CsvReader::detect_separator(content));
  std::size_t line_number = 0;
  bool first_record = true;
  while (const auto read = csv.next(fields)) {
    line_number = csv.line();
    if (!*read) return row_error(line_number, "row", csv.error());
    if (first_record) {
      first_record = false;
      // A header names its columns; a data row starts with a prefix (digits).
      const auto first = lower(fields[0]);
      if (!first.empty() && !std::isdigit(static_cast<unsigned char>(first[0])) && first[0] != '+') {
        for (std::size_t i = 0; i < fields.size(); ++i) {
          const auto name = lower(fields[i]);
          auto found = std::find_if(std::begin(column_names), std::end(column_names),
                                    [&](const auto& c) { return c.first == name; });
          if (found == std::end(column_names)) {
            return row_error(line_number, "header", "unknown column \"" + fields[i].substr(0, 40) + "\"");
          }
          if (std::find(columns.begin(), columns.end(), found->second) != columns.end()) {
            return row_error(line_number, "header", "column \"" + fields[i] + "\" appears twice");
          }
          columns.push_back(found->second);
        }
        for (auto required : {Column::prefix, Column::rate}) {
          if (std::find(columns.begin(), columns.end(), required) == columns.end()) {
            return row_error(line_number, "header", required == Column::prefix ? "no prefix column" : "no rate column");
          }
        }
        continue;
      }
      columns.assign(std::begin(positional), std::end(positional));
    }
    if (fields.size() > columns.size()) {
      return row_error(line_number, "row", std::to_string(fields.size()) + " fields, at most " +
                                               std::to_string(columns.size()) + " expected");
    }
    if (lines.size() == limits.max_rows) {
      return row_error(line_number, "row", "more than " + std::to_string(limits.max_rows) + " rates");
    }
    RateLine line;
    line.line = line_number;
    line.rate.price_per_minute = Money::zero(currency);
    line.rate.connection_fee = Money::zero(currency);
    bool have_rate = false;
    std::optional<int> initial, subsequent;
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const std::string& f = fields[i];
      switch (columns[i]) {
        case Column::prefix: {
          std::string_view p = f;
          if (!p.empty() && p.front() == '+') p.remove_prefix(1);
          if (p.empty() || p.size() > 15 ||
              !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return row_error(line_number, "prefix", std::string("\"").append(f, 0, 32) + "\" is not 1 to 15 digits");
          }
          line.rate.prefix = std::string(p);
          break;
        }
        case Column::description: {
          // A quoted description may span lines (a spreadsheet's multi-line cell): each
          // line break becomes one space.
          std::string text;
          for (std::size_t k = 0; k < f.size(); ++k) {
            if (f[k] == '\r' && k + 1 < f.size() && f[k + 1] == '\n') continue;
            text.push_back(f[k] == '\n' || f[k] == '\r' ? ' ' : f[k]);
          }
          if (text.size() > 255) return row_error(line_number, "description", "longer than 255 characters");
          if (std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
            return row_error(line_number, "description", "contains a control character");
          }
          line.rate.description = std::move(text);
          break;
        }
        case Column::rate: {
          if (lower(f) == "blocked") {
            line.blocked = true;
            have_rate = true;
            break;
          }
          auto money = Money::parse(f, currency, Money::Precision::rate);
          if (!money) return row_error(line_number, "rate", money.error().message);
          if (money->is_negative()) return row_error(line_number, "rate", "\"" + f + "\" is negative");
          if (money->micros() > limits.max_rate_micros) {
            return row_error(line_number, "rate",
                             "\"" + f + "\" a minute is above the limit of " +
                                 Money::from_micros(limits.max_rate_micros, currency).format() + " (a typo?)");
          }
          line.rate.price_per_minute = *money;
          have_rate = true;
          break;
        }
        case Column::increment: {
          if (f.empty()) break;
          const auto slash = f.find('/');
          initial = small_number(f.substr(0, slash), 3600);
          subsequent = slash == std::string::npos ? initial : small_number(f.substr(slash + 1), 3600);
          if (!initial || !subsequent || *initial == 0 || *subsequent == 0) {
            return row_error(line_number, "increment", "\"" + f + "\" is not like 60/60, 30/6 or 1/1");
          }
          break;
        }
        case Column::initial_increment:
        case Column::subsequent_increment: {
          if (f.empty()) break;
          auto v = small_number(f, 3600);
          if (!v || *v == 0) return row_error(line_number, "increment", "\"" + f + "\" is not 1 to 3600 seconds");
          (columns[i] == Column::initial_increment ? initial : subsequent) = v;
          break;
        }
        case Column::connection_fee: {
          if (f.empty()) break;
          auto money = Money::parse(f, currency, Money::Precision::rate);
          if (!money) return row_error(line_number, "connection_fee", money.error().message);
          if (money->is_negative() || money->micros() > limits.max_rate_micros) {
            return row_error(line_number, "connection_fee", "\"" + f + "\" is negative or absurd");
          }
          line.rate.connection_fee = *money;
          break;
        }
        case Column::minimum_duration: {
          if (f.empty()) break;
          auto v = small_number(f, 3600);
          if (!v) return row_error(line_number, "minimum_duration", "\"" + f + "\" is not 0 to 3600 seconds");
          line.rate.minimum_duration = std::chrono::seconds(*v);
          break;
        }
        case Column::effective_from: {
          if (f.empty()) break;
          auto at = parse_date(f);
          if (!at) return row_error(line_number, "effective_from", "\"" + f + "\" is not YYYY-MM-DD[ HH:MM:SS]");
          line.effective_from = *at;
          break;
        }
        case Column::weekdays: {
          auto days = parse_weekdays(f);
          if (!days) return row_error(line_number, "weekdays", "\"" + f + "\" is not like mon-fri, sat|sun or all");
          line.weekdays = *days;
          break;
        }
        case Column::hours: {
          if (f.empty()) break;
          const auto dash = f.find('-');
          auto from = minute_of_day(std::string_view(f).substr(0, dash));
          auto to = dash == std::string::npos ? std::nullopt : minute_of_day(std::string_view(f).substr(dash + 1));
          if (!from || !to || *from == *to) return row_error(line_number, "hours", "\"" + f + "\" is not like 08:00-20:00");
          line.start_minute = static_cast<std::uint16_t>(*from);
          line.end_minute = static_cast<std::uint16_t>(*to);
          break;
        }
      }
    }
    if (line.rate.prefix.empty()) return row_error(line_number, "prefix", "missing");
    if (!have_rate) return row_error(line_number, "rate", "missing");
    line.rate.initial_increment = std::chrono::seconds(initial.value_or(60));
    line.rate.subsequent_increment = std::chrono::seconds(subsequent.value_or(initial.value_or(60)));
    lines.push_back(std::move(line));
  }
  if (lines.empty()) return Error{"invalid_rate_deck", "the rate deck has no rates", "line " + std::to_string(line_number)};
  // Deck order (RateDeck::build keeps it); then the same prefix twice, at the same
  // times, sits side by side: a mistake, reported on the later line of the file.
  std::sort(lines.begin(), lines.end(), deck_order);
  std::optional<std::pair<std::size_t, std::size_t>> duplicate;
  for (std::size_t k = 1; k < lines.size(); ++k) {
    const auto& x = lines[k - 1];
    const auto& y = lines[k];
    if (x.rate.prefix == y.rate.prefix && x.effective_from == y.effective_from && x.weekdays == y.weekdays &&
        x.start_minute == y.start_minute && x.end_minute == y.end_minute) {
      const auto pair = std::minmax(x.line, y.line);
      if (!duplicate || pair.second < duplicate->second) duplicate = pair;
    }
  }
  if (duplicate) {
    std::string prefix;
    for (const auto& l : lines) {
      if (l.line == duplicate->second) prefix = l.rate.prefix;
    }
    return row_error(duplicate->second, "prefix", "duplicate prefix " + prefix + " (also on line " +
                                                      std::to_string(duplicate->first) + ")");
  }
  return lines;
}

std::shared_ptr<const RateDeck> RateDeck::build(std::vector<RateLine> lines) {
  auto deck = std::make_shared<RateDeck>();
  if (!std::is_sorted(lines.begin(), lines.end(), deck_order)) std::sort(lines.begin(), lines.end(), deck_order);
  deck->lines_ = std::move(lines);
  const auto& L = deck->lines_;
  // Breadth-first: a node is the range of sorted lines sharing its `depth`-digit prefix.
  // Lines whose prefix ends here come first in the range ("86" < "860"); the rest split
  // by the next digit, and those children sit next to each other in the next level.
  struct Pending {
    std::uint32_t lo, hi, depth;
  };
  std::vector<Pending> level{{0, static_cast<std::uint32_t>(L.size()), 0}};
  std::vector<Pending> next;
  deck->nodes_.reserve(L.size() * 2 + 1);
  deck->nodes_.push_back({});
  std::size_t level_start = 0;
  while (!level.empty()) {
    next.clear();
    for (std::size_t i = 0; i < level.size(); ++i) {
      auto [lo, hi, depth] = level[i];
      Node& node = deck->nodes_[level_start + i];
      std::uint32_t k = lo;
      while (k < hi && L[k].rate.prefix.size() == depth) ++k;
      node.first_entry = lo;
      node.entries = static_cast<std::uint16_t>(std::min<std::uint32_t>(k - lo, 0x7fff));
      if (k - lo == 1 && L[lo].always()) node.entries |= unconditional;
      node.first_child = static_cast<std::uint32_t>(level_start + level.size() + next.size());
      while (k < hi) {
        const char digit = L[k].rate.prefix[depth];
        std::uint32_t end = k;
        while (end < hi && L[end].rate.prefix[depth] == digit) ++end;
        node.children = static_cast<std::uint16_t>(node.children | (1u << (digit - '0')));
        next.push_back({k, end, depth + 1});
        k = end;
      }
    }
    level_start += level.size();
    deck->nodes_.resize(level_start + next.size());
    std::swap(level, next);
  }
  deck->nodes_.shrink_to_fit();
  deck->build_jumps();
  return deck;
}

void RateDeck::build_jumps() {
  // About one slot per line: 10^6 slots (8 MB) for a million-line deck, none below ten,
  // none when the deck is too big for a slot's fields.
  jump_digits_ = 0;
  if (nodes_.size() >= jump_field || lines_.size() >= jump_field - 1) return;
  for (std::size_t n = lines_.size(); n >= 10 && jump_digits_ < 6; n /= 10) ++jump_digits_;
  if (jump_digits_ == 0) return;
  std::size_t slots = 1;
  for (std::size_t i = 0; i < jump_digits_; ++i) slots *= 10;
  jumps_.assign(slots, Jump{});
  // Depth first down to jump_digits_: a missing child fills its whole range of slots.
  struct Frame {
    std::uint32_t node, depth, slot;  // slot: the digits so far, as a number
    std::uint64_t best;               // as in a slot: line + 1, 0, or all ones
  };
  std::vector<Frame> stack{{0, 0, 0, 0}};
  while (!stack.empty()) {
    const Frame f = stack.back();
    stack.pop_back();
    const Node& node = nodes_[f.node];
    std::uint64_t best = f.best;
    if (best != jump_field && node.entries != 0) {
      best = (node.entries & unconditional) ? node.first_entry + 1u : jump_field;
    }
    if (f.depth == jump_digits_) {
      jumps_[f.slot] = best << 37 | std::uint64_t{node.first_child} << 10 | node.children;
      continue;
    }
    std::size_t width = 1;
    for (std::size_t i = f.depth + 1; i < jump_digits_; ++i) width *= 10;
    std::uint32_t child = node.first_child;
    for (std::uint32_t d = 0; d < 10; ++d) {
      const std::uint32_t slot = f.slot * 10 + d;
      if ((node.children >> d) & 1u) {
        stack.push_back({child++, f.depth + 1, slot, best});
      } else {
        std::fill_n(jumps_.begin() + static_cast<std::ptrdiff_t>(slot * width), width, best << 37);
      }
    }
  }
}

std::int64_t RateDeck::entry_at(const Node& node, Timestamp at) const noexcept {
  if (node.entries & unconditional) return node.first_entry;
  for (std::uint32_t e = 0; e < node.entries; ++e) {
    if (lines_[node.first_entry + e].applies_at(at)) return node.first_entry + e;
  }
  return -1;
}

const RateDeck::Node* RateDeck::step(const Node& node, std::string_view digits, std::size_t i, std::int64_t& best,
                                     Timestamp at) const noexcept {
  if (node.entries != 0) {
    if (const auto e = entry_at(node, at); e >= 0) best = e;
  }
  if (i >= digits.size()) return nullptr;
  const unsigned d = static_cast<unsigned>(digits[i] - '0');
  if (d > 9 || ((node.children >> d) & 1u) == 0) return nullptr;
  return &nodes_[node.first_child + static_cast<unsigned>(std::popcount(node.children & ((1u << d) - 1)))];
}

// Where a walk starts: the slot of the first digits, or the root when the number is too
// short for it, has a non-digit there, or a line on the way depends on the time.
const RateDeck::Node* RateDeck::start(std::string_view digits, std::size_t& i, std::int64_t& best) const noexcept {
  i = 0;
  best = -1;
  if (jump_digits_ == 0 || digits.size() < jump_digits_) return nodes_.data();
  std::uint32_t slot = 0;
  bool all_digits = true;
  for (std::size_t k = 0; k < jump_digits_; ++k) {
    const unsigned d = static_cast<unsigned>(digits[k] - '0');
    all_digits &= d <= 9;
    slot = slot * 10 + d;
  }
  if (!all_digits) return nodes_.data();
  const Jump jump = jumps_[slot];
  if ((jump & depends_on_time) == depends_on_time) return nodes_.data();
  best = static_cast<std::int64_t>(jump >> 37) - 1;
  i = jump_digits_ + 1;
  const auto children = static_cast<unsigned>(jump & 0x3ff);
  const unsigned d = i <= digits.size() ? static_cast<unsigned>(digits[jump_digits_] - '0') : 10u;
  if (d > 9 || ((children >> d) & 1u) == 0) return nullptr;
  return &nodes_[((jump >> 10) & jump_field) + static_cast<unsigned>(std::popcount(children & ((1u << d) - 1)))];
}

const RateLine* RateDeck::lookup(std::string_view digits, Timestamp at) const noexcept {
  if (nodes_.empty()) return nullptr;
  std::size_t i;
  std::int64_t best;
  for (const Node* node = start(digits, i, best); node != nullptr; ++i) node = step(*node, digits, i, best, at);
  return best >= 0 ? &lines_[static_cast<std::size_t>(best)] : nullptr;
}

void RateDeck::lookup_batch(std::span<const std::string_view> numbers, Timestamp at,
                            std::span<const RateLine*> out) const noexcept {
  if (nodes_.empty()) return std::fill(out.begin(), out.end(), nullptr);
  constexpr std::size_t group = 16;
  for (std::size_t base = 0; base < numbers.size(); base += group) {
    const std::size_t m = std::min(group, numbers.size() - base);
    const Node* node[group];
    std::size_t position[group];
    std::int64_t best[group];
    std::size_t remaining = 0;
    for (std::size_t k = 0; k < m; ++k) {
      node[k] = start(numbers[base + k], position[k], best[k]);
      if (node[k] != nullptr) {
        ++remaining;
        __builtin_prefetch(node[k]);
      }
    }
    while (remaining > 0) {
      for (std::size_t k = 0; k < m; ++k) {
        if (node[k] == nullptr) continue;
        node[k] = step(*node[k], numbers[base + k], position[k]++, best[k], at);
        if (node[k] == nullptr) {
          --remaining;
        } else {
          __builtin_prefetch(node[k]);
        }
      }
    }
    for (std::size_t k = 0; k < m; ++k) out[base + k] = best[k] >= 0 ? &lines_[static_cast<std::size_t>(best[k])] : nullptr;
  }
}

std::size_t RateDeck::memory_bytes() const noexcept {
  std::size_t bytes = nodes_.capacity() * sizeof(Node) + jumps_.capacity() * sizeof(Jump) +
                      lines_.capacity() * sizeof(RateLine);
  for (const auto& l : lines_) bytes += l.rate.prefix.capacity() + l.rate.description.capacity();
  return bytes;
}

}  // namespace callback
